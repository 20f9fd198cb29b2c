"""Model + target → Plan: cargo-make's depth-first traversal (SEMANTICS §4), checked up front.

The order of steps is exactly cargo-make's (`create_for_step`): dependencies first, left to
right, each name planned once at its first finishing position, aliases as their own steps,
proxies for `{ name, path }` dependencies never de-duplicated, init first and end last.
Unlike cargo-make, a dependency cycle is a PlanError showing the whole circle, found before
anything runs (cargo-make overflows its stack).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pitstop.errors import Location, PlanError
from pitstop.taskfile.locate import locate
from pitstop.taskfile.model import Dependency, Platform, Task, Taskfile, current_platform
from pitstop.taskfile.normalize import normalize, normalize_definition, not_found

PROXY_MAKEFILE = "Makefile.toml"


@dataclass(frozen=True)
class ProxyTarget:
    """A `{ name, path }` dependency: run `pitstop --makefile <makefile> <task>` in `directory`.

    Resolved like cargo-make: if `path` (relative to the working directory) is a file, the
    directory is its parent and the makefile its name; otherwise `path` is the directory and
    the makefile is Makefile.toml.
    """

    task: str
    path: str
    directory: Path
    makefile: str
    location: Location

    @classmethod
    def resolve(cls, dependency: Dependency, cwd: Path) -> ProxyTarget:
        written = dependency.path or "."
        candidate = cwd / written
        if candidate.is_file():
            directory, makefile = candidate.parent, candidate.name
        else:
            directory, makefile = candidate, PROXY_MAKEFILE
        return cls(dependency.name, written, directory, makefile, dependency.location)


@dataclass(frozen=True)
class Step:
    """One plan step. `task` is normalised; `name` is the name as requested (maybe an alias).

    `deps` names the steps this one must wait for in a parallel run; `dep_steps` are the same
    as indices into `Plan.steps`, which stay unambiguous when a name occurs twice (proxies,
    or `init` both as the init task and as a dependency).
    """

    name: str
    task: Task
    deps: tuple[str, ...] = ()
    proxy: ProxyTarget | None = None
    dep_steps: tuple[int, ...] = ()


@dataclass(frozen=True)
class Plan:
    target: str
    steps: tuple[Step, ...]

    def names(self) -> list[str]:
        return [step.name for step in self.steps]


def build_plan(
    taskfile: Taskfile,
    target: str,
    *,
    allow_private: bool = False,
    skip_tasks: re.Pattern[str] | None = None,
    skip_init_end: bool = False,
    sub_flow: bool = False,
    platform: Platform | None = None,
    cwd: Path | None = None,
) -> Plan:
    """The plan for running `target` (§4). Raises PlanError before anything runs.

    `sub_flow` is a `run_task` plan: no init/end, private tasks allowed. `cwd` is where
    `{ name, path }` dependency paths are resolved (default: the process working directory).
    """
    builder = _Builder(
        taskfile,
        platform or current_platform(),
        skip_tasks,
        allow_private=allow_private or sub_flow,
        cwd=cwd or Path.cwd(),
    )
    with_hooks = not (skip_init_end or sub_flow)
    init = builder.add_predefined(taskfile.config.init_task) if with_hooks else None
    builder.visit_root(target)
    end = builder.add_predefined(taskfile.config.end_task) if with_hooks else None
    builder.check_run_task_targets()
    return builder.finish(target, init, end)


def no_task_file(directory: Path, wanted: str) -> PlanError:
    """Neither pitstop.toml nor Makefile.toml: only the base tasks would load, silently."""
    # No location: pointing at the Makefile.toml that does not exist would read as if it did.
    return PlanError(
        f"no task file: looked for pitstop.toml and Makefile.toml in {directory} (for {wanted})",
        hint="create one of them, pass --makefile FILE, or --cwd DIR to run elsewhere",
    )


@dataclass
class _Draft:
    name: str
    task: Task
    dep_steps: list[int] = field(default_factory=list)
    proxy: ProxyTarget | None = None


class _Builder:
    def __init__(
        self,
        taskfile: Taskfile,
        platform: Platform,
        skip: re.Pattern[str] | None,
        *,
        allow_private: bool,
        cwd: Path,
    ) -> None:
        self.taskfile = taskfile
        self.platform = platform
        self.skip = skip
        self.allow_private = allow_private
        self.cwd = cwd
        self.drafts: list[_Draft] = []
        self.planned: dict[str, int] = {}
        # Names whose subtree made no proxy step: walking them again is a no-op, skip it.
        self.settled: set[str] = set()
        self.proxies = 0  # proxy steps made so far (counted, not summed per visit: O(n^2))
        self.skipped: set[str] = set()
        # The names being visited, with the location of the edge that led to each.
        self.stack: list[tuple[str, Location | None]] = []

    # ------------------------------------------------------------------ traversal

    def visit_root(self, name: str) -> None:
        skipped = self.skip is not None and self.skip.search(name)
        if not skipped and not self.taskfile.in_memory and not self.taskfile.path.is_file():
            # Only the base tasks are loaded: running "default" would silently do nothing.
            raise no_task_file(self.taskfile.directory, f'task "{name}"')
        self.visit(name, None, is_root=True)

    def check_run_task_targets(self) -> None:
        """A `run_task` naming an unknown task fails now rather than halfway through the run."""
        for draft in self.drafts:
            for spec in draft.task.run_task or ():
                names = (*spec.names, *([spec.cleanup_task] if spec.cleanup_task else []))
                for name in names:
                    if self.skip is not None and self.skip.search(name):
                        continue
                    if name not in self.taskfile.tasks:
                        raise not_found(
                            self.taskfile.tasks, name, draft.name, spec.location, "run_task of"
                        )

    def visit(self, name: str, dependency: Dependency | None, *, is_root: bool) -> int | None:
        """cargo-make's `create_for_step`; returns the step index standing for this reference."""
        if self.skip is not None and self.skip.search(name):
            return None
        if dependency is not None and dependency.path is not None:
            return self.add_proxy(dependency)
        edge = dependency.location if dependency is not None else None
        self.check_cycle(name, edge)
        if name in self.skipped:
            return None
        if name in self.settled:
            return self.planned.get(name)
        task = self.normalize(name, edge)
        if is_root and task.private and not self.allow_private:
            raise PlanError(
                # cargo-make's words (a comparison case checks them), so the name is bare.
                f"Task {name} is private (in {task.location.path.name})",
                task.where("private"),
                hint="private tasks can only run as dependencies; pass --allow-private to run it",
            )
        if task.disabled:
            self.skipped.add(name)
            return None
        proxies_before = self.proxies
        dep_steps = self.visit_dependencies(name, task)
        index = self.plan_step(name, task, dep_steps, is_root)
        if self.proxies == proxies_before:
            self.settled.add(name)
        return index

    def visit_dependencies(self, name: str, task: Task) -> list[int]:
        self.stack.append((name, None))
        dep_steps: list[int] = []
        for dependency in task.dependencies or ():
            self.stack[-1] = (name, dependency.location)
            index = self.visit(dependency.name, dependency, is_root=False)
            if index is not None and index not in dep_steps:
                dep_steps.append(index)
        self.stack.pop()
        return dep_steps

    def plan_step(self, name: str, task: Task, dep_steps: list[int], is_root: bool) -> int:
        existing = self.planned.get(name)
        if existing is not None:
            if is_root:
                # Only reachable through a cycle, which check_cycle reports first; kept for parity.
                raise PlanError(f'Circular reference found for task: "{name}"', task.location)
            return existing
        _check_one_action(name, task)
        self.drafts.append(_Draft(name, task, dep_steps))
        self.planned[name] = len(self.drafts) - 1
        return len(self.drafts) - 1

    def check_cycle(self, name: str, edge: Location | None) -> None:
        names = [entry[0] for entry in self.stack]
        if name not in names:
            return
        circle = " -> ".join([*names[names.index(name) :], name])
        where = f" (declared at {edge})" if edge is not None else ""
        raise PlanError(
            # cargo-make's wording first (its CircularReference error), then the whole circle.
            f'Circular reference found for task: "{name}": dependency cycle {circle}{where}',
            edge,
            hint="a task cannot depend on itself, even indirectly; remove one of these dependencies",
        )

    def normalize(self, name: str, edge: Location | None) -> Task:
        required_by = self.stack[-1][0] if self.stack else None
        location = edge if edge is not None else Location(self.taskfile.path)
        try:
            return normalize(
                self.taskfile.tasks, name, self.platform, required_by=required_by, location=location
            )
        except PlanError as error:
            if len(self.stack) < 2 or location.path == self.taskfile.path:
                raise
            # Deep inside another file (the built-in tasks): name the way from what was asked.
            chain = " -> ".join([*(entry[0] for entry in self.stack), name])
            raise PlanError(f"{error.message} (via {chain})", error.location, error.hint) from None

    # ------------------------------------------------------------------ special steps

    def add_proxy(self, dependency: Dependency) -> int:
        """A step running the task in another file; never de-duplicated (§4.6)."""
        proxy = ProxyTarget.resolve(dependency, self.cwd)
        if not proxy.directory.is_dir():
            # Found now, not as "cannot run python3 ... No such file or directory" later.
            raise PlanError(
                f"folder {proxy.directory} (from `path` at {dependency.location}) does not exist",
                dependency.location,
                hint=f'`path = "{proxy.path}"` is relative to the working directory {self.cwd}',
            )
        name = f"{dependency.name}_proxy"
        task = Task(name=name, location=dependency.location)
        self.drafts.append(_Draft(name, task, proxy=proxy))
        self.proxies += 1
        return len(self.drafts) - 1

    def add_predefined(self, name: str | None) -> int | None:
        """init/end: no alias resolution, no dependencies, no de-duplication (§4.1)."""
        if name is None:
            return None
        if name not in self.taskfile.tasks:
            # cargo-make's add_predefined_step normalises it and fails with NotFound.
            raise not_found(self.taskfile.tasks, name, None, self._config_location(name))
        task = normalize_definition(self.taskfile.tasks, name, self.platform)
        if task.disabled:
            return None
        self.drafts.append(_Draft(name, task))
        return len(self.drafts) - 1

    def _config_location(self, name: str) -> Location:
        """Where `[config]` names this init/end task, when it is in the user file."""
        path = self.taskfile.path
        try:
            locator = locate(path.read_text(encoding="utf-8"), path)
        except OSError:
            return Location(path)
        for key in ("init_task", "end_task"):
            key_path = ("config", key)
            if locator.has(key_path) and getattr(self.taskfile.config, key) == name:
                return locator.at(key_path)
        return Location(path)

    # ------------------------------------------------------------------ result

    def finish(self, target: str, init: int | None, end: int | None) -> Plan:
        """Freeze the drafts; init precedes every step and end follows every step."""
        steps = []
        for index, draft in enumerate(self.drafts):
            deps = list(draft.dep_steps)
            if init is not None and index != init and init not in deps:
                deps.insert(0, init)
            if index == end:
                deps = list(range(index))
            steps.append(
                Step(
                    name=draft.name,
                    task=draft.task,
                    deps=tuple(self.drafts[i].name for i in deps),
                    proxy=draft.proxy,
                    dep_steps=tuple(deps),
                )
            )
        return Plan(target, tuple(steps))


def _check_one_action(name: str, task: Task) -> None:
    """Two actions can meet through extend or a file merge; cargo-make fails at run time."""
    actions = task.actions()
    if len(actions) > 1:
        hint = "a task runs one of command, script or run_task; split it into two tasks"
        first, second = (task.where(action) for action in actions[:2])
        if first.path != second.path:
            # Typically a Makefile.toml task laid over cargo-make's built-in of the same name.
            inherited = first if first.path != task.location.path else second
            kind = actions[0] if inherited is first else actions[1]
            hint = (
                f"[tasks.{name}] extends the definition at {inherited}, which sets {kind}; "
                "add clear = true to replace it instead"
            )
        raise PlanError(
            f"Invalid task: {name}, contains multiple actions ({' and '.join(actions)}) "
            f"(in {task.location.path.name})",
            task.where(actions[1]),
            hint=hint,
        )


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle in `graph` (node → successors) as [a, b, ..., a], or None. Depth-first, in order."""
    done: set[str] = set()
    for start in graph:
        cycle = _cycle_from(graph, start, [], done)
        if cycle is not None:
            return cycle
    return None


def _cycle_from(
    graph: Mapping[str, Iterable[str]], node: str, path: list[str], done: set[str]
) -> list[str] | None:
    if node in path:
        return [*path[path.index(node) :], node]
    if node in done:
        return None
    path.append(node)
    for successor in graph.get(node, ()):
        cycle = _cycle_from(graph, successor, path, done)
        if cycle is not None:
            return cycle
    path.pop()
    done.add(node)
    return None


def acts(step: Step) -> bool:
    """Whether the step does anything beyond setting variables."""
    task = step.task
    return step.proxy is not None or any(
        getattr(task, attribute) is not None
        for attribute in ("command", "script", "run_task", "install_crate")
    )
