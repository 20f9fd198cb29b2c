"""Task normalisation (cargo-make SEMANTICS §3.2-3.5): alias → platform override → extend.

`extend_task` is cargo-make's `Task::extend` operator, used for file merges and the task-level
`extend` attribute. `normalize` turns a requested name into the effective task; the result
keeps the requested name, because the plan step (and de-duplication) use the name as written.
"""

from __future__ import annotations

from collections.abc import Mapping

from pitstop.errors import Location, PlanError
from pitstop.taskfile.model import TASK_ATTRIBUTES, Platform, Script, ScriptSections, Task

# A platform override always takes these from the parent task (§3.3).
_FROM_PARENT = ("description", "category", "clear")
_ALIASES = ("alias", "linux_alias", "mac_alias", "windows_alias")
_PLATFORM_TABLES = ("linux", "mac", "windows")
# Everything `Task.extend` overrides: the attributes plus the platform sub-tables.
_EXTENDABLE = (*TASK_ATTRIBUTES, *_PLATFORM_TABLES)


# --------------------------------------------------------------------------- Task.extend


def extend_task(base: Task, over: Task) -> Task:
    """cargo-make's `Task::extend(base, over)`: what `over` sets wins; `clear` drops the rest.

    Lists and maps are replaced whole. Scripts merge section by section (see `extend_script`).
    The result has `over`'s name and location; key locations come from whichever side won.
    """
    clear = over.clear is True
    changes: dict[str, object] = {}
    locations = {} if clear else dict(base.key_locations)
    for attribute in _EXTENDABLE:
        mine, theirs = getattr(over, attribute), getattr(base, attribute)
        if attribute == "script" and mine is not None:
            changes[attribute] = extend_script(theirs, mine)
        elif mine is not None:
            changes[attribute] = mine
        elif clear:
            changes[attribute] = None
        else:
            changes[attribute] = theirs
    locations.update(over.key_locations)
    return over.replace(**changes, key_locations=locations)


def extend_script(base: Script | None, over: Script) -> Script:
    """`extend_script_value`: section forms merge per section; other forms replace.

    Quirk kept from cargo-make: a sectioned base extended by a plain script keeps the base
    sections and ignores the plain script.
    """
    if isinstance(base, ScriptSections) and isinstance(over, ScriptSections):
        return ScriptSections(
            pre=over.pre if over.pre is not None else base.pre,
            main=over.main if over.main is not None else base.main,
            post=over.post if over.post is not None else base.post,
        )
    if isinstance(base, ScriptSections):
        return base
    return over


# --------------------------------------------------------------------------- platform override


def apply_platform_override(task: Task, platform: Platform) -> Task:
    """`get_normalized_task`: lay the `[tasks.x.<platform>]` table over the task (§3.3).

    Attributes set in the override win; unset ones come from the parent unless the override
    says `clear = true`. description, category and clear always come from the parent. The
    result has no alias fields and no platform tables. env and script are taken whole.
    """
    override: Task | None = getattr(task, platform)
    if override is None:
        return task
    clear = override.clear is True
    changes: dict[str, object] = {}
    locations = {} if clear else dict(task.key_locations)
    for attribute in TASK_ATTRIBUTES:
        mine, parents = getattr(override, attribute), getattr(task, attribute)
        if attribute in _FROM_PARENT:
            changes[attribute] = parents
        elif attribute in _ALIASES:
            changes[attribute] = None
        elif mine is not None:
            changes[attribute] = mine
            if attribute in override.key_locations:
                locations[attribute] = override.key_locations[attribute]
        else:
            changes[attribute] = None if clear else parents
    for attribute in _FROM_PARENT:
        if attribute in task.key_locations:
            locations[attribute] = task.key_locations[attribute]
    return task.replace(**changes, linux=None, mac=None, windows=None, key_locations=locations)


# --------------------------------------------------------------------------- aliases


def alias_of(task: Task, platform: Platform) -> str | None:
    """The platform alias wins over `alias` (`Task::get_alias`)."""
    platform_alias: str | None = getattr(task, f"{platform}_alias")
    return platform_alias if platform_alias is not None else task.alias


def resolve_alias(
    tasks: Mapping[str, Task],
    name: str,
    platform: Platform,
    *,
    required_by: str | None = None,
    location: Location | None = None,
) -> str:
    """Follow aliases from `name` to the task that has none; its name is returned."""
    chain = [name]
    current = name
    while True:
        task = tasks.get(current)
        if task is None:
            # The first name was asked for by `required_by`; later ones by the previous alias.
            if current == name:
                raise not_found(tasks, current, required_by, location)
            previous = tasks[chain[-2]]
            raise not_found(tasks, current, previous.name, alias_location(previous, platform))
        target = alias_of(task, platform)
        if target is None:
            return current
        if target in chain:
            circle = " -> ".join([*chain, target])
            raise PlanError(
                f"Detected cycle while resolving alias {current}: {circle} "
                f"(in {task.location.path.name})",
                alias_location(task, platform),
                hint="make one of these tasks a real task instead of an alias",
            )
        chain.append(target)
        current = target


def alias_location(task: Task, platform: Platform) -> Location:
    """Where the alias that applies on `platform` is written."""
    key = f"{platform}_alias"
    return task.where(key if getattr(task, key) is not None else "alias")


def not_found(
    tasks: Mapping[str, Task],
    name: str,
    required_by: str | None,
    location: Location | None,
    what: str = "required by",
) -> PlanError:
    """`Task "x" not found`, naming who asked for it and suggesting close names."""
    message = f'Task "{name}" not found'
    if required_by is not None:
        where = f" at {location}" if location is not None and location.line > 0 else ""
        message += f' ({what} "{required_by}"{where})'
    elif location is not None:
        message += f" (in {location.path.name})"
    builtin = _builtin_note(name)
    if builtin is not None:
        # A cargo-make built-in: a close name from the user's file would be a wrong guess.
        note, advice = builtin
        return PlanError(f"{message}: {note}", location, advice)
    import difflib  # only for this message; it costs ~2 ms at every start

    close = difflib.get_close_matches(name, list(tasks), n=3)
    hint = "did you mean " + ", ".join(f'"{c}"' for c in close) + "?" if close else None
    return PlanError(message, location, hint)


def _builtin_note(name: str) -> tuple[str, str] | None:
    """(what the name is, what to do) when `name` is one of cargo-make's built-in tasks."""
    from pitstop.taskfile.builtins import NOT_PROVIDED, core_taskfile

    reason = NOT_PROVIDED.get(name)
    if reason is not None:
        return (
            f"it is one of cargo-make's built-in tasks, which pitstop does not provide: {reason}",
            f'define [tasks.{name}] in your task file, or remove the reference to "{name}"',
        )
    if name in core_taskfile().tasks:
        return (
            "it is one of cargo-make's built-in Rust tasks, which are not loaded because of "
            "skip_core_tasks = true (or because the file is pitstop.toml)",
            "set [config] skip_core_tasks = false to load them, or define the task yourself",
        )
    return None


# --------------------------------------------------------------------------- normalise


def normalize(
    tasks: Mapping[str, Task],
    name: str,
    platform: Platform,
    *,
    required_by: str | None = None,
    location: Location | None = None,
) -> Task:
    """The effective task for the requested `name` (§3.4), keeping `name`.

    Raises PlanError for a missing task, an alias cycle, or an `extend` cycle (cargo-make
    recurses without bound on the latter; we report the circle instead).
    """
    target = resolve_alias(tasks, name, platform, required_by=required_by, location=location)
    task = _normalize_target(tasks, target, platform, ())
    # dataclasses.replace is the slow part of listing ~250 tasks: skip it when it is a no-op.
    return task if task.name == name else task.replace(name=name)


def _normalize_target(
    tasks: Mapping[str, Task], target: str, platform: Platform, extending: tuple[str, ...]
) -> Task:
    task = apply_platform_override(tasks[target], platform)
    if task.extend is None:
        return task
    chain = (*extending, target)
    parent_name = resolve_alias(
        tasks, task.extend, platform, required_by=target, location=task.where("extend")
    )
    if parent_name in chain:
        start = chain.index(parent_name)
        circle = " -> ".join([*chain[start:], parent_name])
        raise PlanError(
            f"Detected cycle while resolving extend: {circle} (in {task.location.path.name})",
            task.where("extend"),
            hint="remove one of these `extend` attributes",
        )
    parent = _normalize_target(tasks, parent_name, platform, chain)
    # The result keeps the child's own `extend` value (and name).
    return extend_task(parent, task)


def normalize_definition(tasks: Mapping[str, Task], name: str, platform: Platform) -> Task:
    """Normalise `name` without resolving its alias: how init and end tasks are looked up."""
    return _normalize_target(tasks, name, platform, ())
