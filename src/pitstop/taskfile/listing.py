"""Task listings and plan printouts (cargo-make SEMANTICS §11) as text; nothing is printed here.

`list_all_steps` reproduces `--list-all-steps` byte for byte, except that pitstop's service
tasks (which cargo-make does not know) say so after their name; `print_steps_short`
reproduces `--print-steps --output-format short-description`.
"""

from __future__ import annotations

from collections import defaultdict

from pitstop.taskfile.model import Platform, Task, Taskfile, current_platform
from pitstop.taskfile.normalize import normalize, resolve_alias

# Not typing's: `pitstop --list` does not import typing (~2.5 ms); mypy honours the name.
TYPE_CHECKING = False
if TYPE_CHECKING:  # only in annotations: `--list` need not import the planner (~3 ms)
    from pitstop.taskfile.planner import Plan, Step

NO_CATEGORY = "No Category"
NO_DESCRIPTION = "No Description."
NO_SHORT_DESCRIPTION = "no description"
SERVICE_MARKER = " [service]"
_UNINTERESTING = frozenset({"init", "end", "empty"})


def list_all_steps(
    taskfile: Taskfile,
    category: str | None = None,
    hide_uninteresting: bool = False,
    *,
    platform: Platform | None = None,
) -> str:
    """Public tasks grouped by category, aliases folded into their target's line.

    Raises PlanError if some alias cannot be resolved (cargo-make fails the same way).
    """
    platform = platform or current_platform()
    aliases = _aliases_by_target(taskfile, platform)
    alias_names = {alias for names in aliases.values() for alias in names}
    # category -> task name -> its line; the name stays the key, since lines sort by name.
    categories: dict[str, dict[str, str]] = defaultdict(dict)
    for name in taskfile.tasks:
        if name in alias_names:  # folded into the target's line instead
            continue
        task = normalize(taskfile.tasks, name, platform)
        if task.private or (hide_uninteresting and _uninteresting(name)):
            continue
        marker = SERVICE_MARKER if task.service is not None else ""
        line = f"{name}{marker} - {task.description or NO_DESCRIPTION}{deprecation_suffix(task)}"
        if aliases.get(name):
            line += f" [aliases: {', '.join(sorted(aliases[name], key=_bytewise))}]"
        categories[task.category or NO_CATEGORY][name] = line
    return "".join(
        _category_block(name, categories[name])
        for name in sorted(categories, key=_bytewise)
        if category is None or name == category
    )


def deprecation_suffix(task: Task) -> str:
    """` (deprecated)` or ` (deprecated - msg)`; nothing for false or unset."""
    if task.deprecated is True:
        return " (deprecated)"
    if isinstance(task.deprecated, str):
        return f" (deprecated - {task.deprecated})"
    return ""


def print_steps_short(plan: Plan) -> str:
    """`N. name - description` per step (`no description` when it has none)."""
    return "".join(
        f"{number}. {step.name} - {step.task.description or NO_SHORT_DESCRIPTION}\n"
        for number, step in enumerate(plan.steps, start=1)
    )


def print_steps(plan: Plan) -> str:
    """A readable plan: one step per line with what it waits for in a parallel run."""
    count = len(plan.steps)
    lines = [f'Plan for "{plan.target}" ({count} step{"" if count == 1 else "s"}):']
    lines.extend(_step_line(number, step) for number, step in enumerate(plan.steps, start=1))
    return "\n".join(lines) + "\n"


def _step_line(number: int, step: Step) -> str:
    text = f"{number:>3}. {step.name}"
    if step.proxy is not None:
        text += f" (runs {step.proxy.task} from {step.proxy.directory / step.proxy.makefile})"
    elif step.task.name != step.name or step.task.location.line:
        text += f"  [{step.task.location}]"
    if step.deps:
        text += f"  after: {', '.join(dict.fromkeys(step.deps))}"
    return text


def _aliases_by_target(taskfile: Taskfile, platform: Platform) -> dict[str, list[str]]:
    """target name → the names that are aliases of it (directly or through a chain)."""
    aliases: dict[str, list[str]] = defaultdict(list)
    for name in taskfile.tasks:
        target = resolve_alias(taskfile.tasks, name, platform)
        if target != name:
            aliases[target].append(name)
    return aliases


def _uninteresting(name: str) -> bool:
    return name in _UNINTERESTING or "pre-" in name or "post-" in name


def _category_block(category: str, lines: dict[str, str]) -> str:
    body = "".join(f"{lines[name]}\n" for name in sorted(lines, key=_bytewise))
    return f"{category}\n----------\n{body}\n"


def _bytewise(text: str) -> bytes:
    # Rust's BTreeMap<String, _> orders by UTF-8 bytes, not by code points or locale.
    return text.encode("utf-8")
