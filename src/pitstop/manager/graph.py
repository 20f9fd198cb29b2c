"""The service graph of a task file: every service task, its build, and which services it
depends on. Pure: reads the loaded task file, plans with the planner, starts nothing.

A service task's dependencies are walked as the planner orders them. A dependency that is a
service itself is a service dependency (it must be ready before this one starts); the walk does
not go through it (its own build is its own). Every other task reached is part of this
service's build. A build task reached from several services is shared: a change batch runs it
once (cargo-make's run-once rule, applied to a change) and every service using it swaps.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pitstop.errors import Location, UserError
from pitstop.taskfile.addresses import ListenAddress
from pitstop.taskfile.model import Task, Taskfile, current_platform
from pitstop.taskfile.planner import Step, build_plan, find_cycle
from pitstop.taskfile.service import ServiceSpec


@dataclass(frozen=True)
class BuildStep:
    """One step of a service's build. `shared_key` is the same for every service that runs
    the same task (so it runs once per change); None for steps each service runs itself
    (init/end hooks, which every plan has, and proxies to other files)."""

    step: Step
    shared_key: str | None
    hook: bool = False  # the init or end task, which every plan has


@dataclass(frozen=True)
class ServiceNode:
    name: str
    task: Task  # the normalised service task (its command is the instance's)
    spec: ServiceSpec
    depends_on: tuple[str, ...]  # services that must be ready first (direct ones)
    build: tuple[BuildStep, ...]  # in plan order

    @property
    def addresses(self) -> tuple[ListenAddress, ...]:
        return (*self.spec.listen, *((self.spec.proxy,) if self.spec.proxy else ()))

    @property
    def builds(self) -> bool:
        """Whether there is something to build beyond the init/end hooks."""
        return any(not b.hook for b in self.build)

    @property
    def shared_keys(self) -> frozenset[str]:
        return frozenset(b.shared_key for b in self.build if b.shared_key is not None)


@dataclass(frozen=True)
class ServiceGraph:
    """Services in dependency order (each after the services it depends on)."""

    taskfile: Taskfile
    nodes: tuple[ServiceNode, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def node(self, name: str) -> ServiceNode:
        return next(n for n in self.nodes if n.name == name)

    def select(self, names: Sequence[str]) -> ServiceGraph:
        """The named services plus the services they depend on (all of them if none named)."""
        if not names:
            return self
        known = {n.name: n for n in self.nodes}
        wanted: set[str] = set()
        pending = list(names)
        for name in names:
            if name not in known:
                raise self.unknown_service(name)
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(known[name].depends_on)
        return ServiceGraph(self.taskfile, tuple(n for n in self.nodes if n.name in wanted))

    def dependants_of(self, name: str) -> tuple[str, ...]:
        """Services that depend on `name` directly."""
        return tuple(n.name for n in self.nodes if name in n.depends_on)

    def dependants(self, name: str) -> tuple[str, ...]:
        """Services that depend on `name`, directly or not, in dependency order."""
        found: set[str] = {name}
        for node in self.nodes:
            if any(d in found for d in node.depends_on):
                found.add(node.name)
        found.discard(name)
        return tuple(n.name for n in self.nodes if n.name in found)

    def sharing(self, names: Iterable[str]) -> tuple[str, ...]:
        """`names` plus every service sharing a build step with one of them (transitively),
        in dependency order: the services a change to their builds must swap."""
        chosen = set(names)
        keys: set[str] = set()
        grown = True
        while grown:
            grown = False
            for node in self.nodes:
                if node.name in chosen:
                    new = node.shared_keys - keys
                    if new:
                        keys |= new
                        grown = True
                elif node.shared_keys & keys:
                    chosen.add(node.name)
                    grown = True
        return tuple(n.name for n in self.nodes if n.name in chosen)

    def owners(self, shared_key: str) -> tuple[str, ...]:
        """The services whose build runs the shared step `shared_key`, in dependency order."""
        return self._owners.get(shared_key, ())

    @functools.cached_property
    def _owners(self) -> dict[str, tuple[str, ...]]:
        # Asked for each line a shared build step prints in `up`; a graph never changes.
        found: dict[str, list[str]] = {}
        for node in self.nodes:
            for key in node.shared_keys:
                found.setdefault(key, []).append(node.name)
        return {key: tuple(names) for key, names in found.items()}

    def build_labels(self) -> tuple[str, ...]:
        """The prefixes build output may carry in `up`: each service, and "api,web" for a
        step that api and web share."""
        keys = {k for n in self.nodes for k in n.shared_keys}
        return tuple(dict.fromkeys([*self.names, *(",".join(self.owners(k)) for k in keys)]))

    def unknown_service(self, name: str) -> UserError:
        import difflib  # only on this error path

        services = [n.name for n in self.nodes]
        where = Location(self.taskfile.path)
        if name in self.taskfile.tasks:
            task = self.taskfile.tasks[name]
            return UserError(
                f'task "{name}" is not a service',
                task.location,
                f'add service = {{ listen = "127.0.0.1:8080" }} to [tasks.{name}], '
                f"or name one of the services: {', '.join(services) or '(none)'}",
            )
        close = difflib.get_close_matches(name, services, n=3)
        if close:
            hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif services:
            hint = f"the services are {', '.join(services)}"
        else:
            hint = "no task in this file has a service table"
        return UserError(f"no service named {name!r}", where, hint)


def load_graph(
    taskfile: Taskfile,
    *,
    cwd: Path,
    skip: re.Pattern[str] | None = None,
    skip_init_end: bool = False,
) -> ServiceGraph:
    """Every service task of `taskfile`, checked: PlanError for a dependency cycle (the
    planner names the whole circle), UserError for two services on one address."""
    hooks = {taskfile.config.init_task, taskfile.config.end_task} - {None}
    nodes: dict[str, ServiceNode] = {}
    for name, raw in taskfile.tasks.items():
        if raw.service is None:
            continue
        plan = build_plan(
            taskfile,
            name,
            allow_private=True,
            skip_tasks=skip,
            skip_init_end=skip_init_end,
            platform=current_platform(),
            cwd=cwd,
        )
        target = max(i for i, s in enumerate(plan.steps) if s.name == name and s.proxy is None)
        task = plan.steps[target].task
        if task.service is None:
            continue
        depends_on: list[str] = []
        build: set[int] = set()
        pending = list(plan.steps[target].dep_steps)
        while pending:
            index = pending.pop()
            step = plan.steps[index]
            if step.task.service is not None and step.proxy is None:
                if step.name not in depends_on:
                    depends_on.append(step.name)
            elif index not in build:
                build.add(index)
                pending.extend(step.dep_steps)
        steps = tuple(_build_step(plan.steps[i], hooks) for i in sorted(build))
        order = {s.name: i for i, s in enumerate(plan.steps)}
        depends_on.sort(key=order.__getitem__)
        nodes[name] = ServiceNode(name, task, task.service, tuple(depends_on), steps)
    _check_cycles(nodes)
    _check_addresses(list(nodes.values()))
    return ServiceGraph(taskfile, tuple(nodes[n] for n in _dependency_order(nodes)))


def definition(node: ServiceNode, taskfile: Taskfile) -> object:
    """What a service runs and how it is built, comparable between two loads of the task
    file: its normalised task (command, env, service table...), the services it depends on,
    its build steps' tasks and the sub-flows they run (`taskfile`'s tasks), without where any
    of it was written (a line added above moves every location) and without its `watch`
    options (they change what is watched, not what runs)."""
    steps = tuple((b.step, b.shared_key) for b in node.build)
    flows = _sub_flows([node.task, *(b.step.task for b in node.build)], taskfile)
    return _plain((node.task, node.depends_on, steps, flows))


def _sub_flows(tasks: Iterable[Task], taskfile: Taskfile) -> tuple[tuple[str, Task | None], ...]:
    """The tasks that `tasks` run by name (`run_task` and its `cleanup_task`), with all that
    those name in turn (dependencies, aliases, extend, their own run_task): a sub-flow is
    planned when it runs, so no plan step holds it. A name that is no task (one made of
    variables) stays as a name."""
    found: dict[str, Task | None] = {}
    pending = [name for task in tasks for name in _runs(task)]
    while pending:
        name = pending.pop()
        if name not in found:
            task = found[name] = taskfile.tasks.get(name)
            if task is not None:
                pending.extend(_names(task))
    return tuple(sorted(found.items(), key=lambda item: item[0]))


def _runs(task: Task) -> list[str]:
    names: list[str] = []
    for spec in task.run_task or ():
        names.extend(spec.names)
        if spec.cleanup_task is not None:
            names.append(spec.cleanup_task)
    return names


def _names(task: Task) -> list[str]:
    """Every task that `task` (a raw one: its platform tables too) names."""
    names = _runs(task)
    names += [d.name for d in task.dependencies or () if d.path is None]
    aliases = (task.alias, task.linux_alias, task.mac_alias, task.windows_alias, task.extend)
    names += [name for name in aliases if name is not None]
    for override in (task.linux, task.mac, task.windows):
        if override is not None:
            names += _names(override)
    return names


def table_definition(node: ServiceNode) -> object:
    """The service table alone: what the service's supervisor was made with."""
    return _plain(node.spec)


def shared_definition(taskfile: Taskfile) -> object:
    """What every service's build sees: the file's own env, env files and config."""
    return _plain((taskfile.env, taskfile.env_files, taskfile.env_scripts, taskfile.config))


def _plain(value: object) -> object:
    if isinstance(value, Location):
        return None
    names = getattr(type(value), "__record_fields__", None)  # pitstop.records
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        skip = ("key_locations", "watch") if isinstance(value, Task) else ("key_locations",)
        return (
            type(value).__name__,
            tuple((n, _plain(getattr(value, n))) for n in names if n not in skip),
        )
    if isinstance(value, tuple | list):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _plain(v)) for k, v in value.items()))
    if isinstance(value, frozenset | set):
        return frozenset(_plain(v) for v in value)
    return value


def _build_step(step: Step, hooks: set[str | None]) -> BuildStep:
    if step.proxy is not None:
        return BuildStep(step, None)
    if step.name in hooks:
        return BuildStep(step, None, hook=True)
    return BuildStep(step, step.name)


def _check_cycles(nodes: dict[str, ServiceNode]) -> None:
    """The planner reports a cycle through tasks first; this one is kept for a graph built
    another way (and to state the invariant `_dependency_order` relies on)."""
    cycle = find_cycle({n: node.depends_on for n, node in nodes.items()})
    if cycle is not None:
        node = nodes[cycle[0]]
        raise UserError(
            f"dependency cycle between services: {' -> '.join(cycle)}",
            node.task.where("dependencies"),
            "a service cannot depend on itself, even through other services",
        )


def _dependency_order(nodes: dict[str, ServiceNode]) -> list[str]:
    """Depth-first post-order in file order: each service after the ones it depends on."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dep in nodes[name].depends_on:
            visit(dep)
        order.append(name)

    for name in nodes:
        visit(name)
    return order


def _address_key(address: ListenAddress) -> tuple[str, ...] | None:
    """What two addresses must share to clash; None for port 0 (each bind gets its own)."""
    if address.family == "unix":
        return ("unix", str(Path(address.path).absolute()))
    if address.port == 0:
        return None
    host = address.host or "0.0.0.0"
    return ("tcp", host, str(address.port))


def _check_addresses(nodes: list[ServiceNode]) -> None:
    seen: dict[tuple[str, ...], tuple[ServiceNode, ListenAddress]] = {}
    wildcard = {"0.0.0.0", "::", ""}
    for node in nodes:
        for address in node.addresses:
            key = _address_key(address)
            if key is None:
                continue
            clash = seen.get(key)
            if clash is None and key[0] == "tcp":
                # A wildcard bind takes the port on every host.
                clash = next(
                    (
                        v
                        for k, v in seen.items()
                        if k[0] == "tcp"
                        and k[2] == key[2]
                        and (k[1] in wildcard or key[1] in wildcard)
                    ),
                    None,
                )
            if clash is not None and clash[0].name != node.name:
                first, first_address = clash
                raise UserError(
                    f"services {first.name} and {node.name} both listen on {address}",
                    node.spec.location,
                    f"{first.name} takes {first_address} at {first.spec.location}; "
                    "give each service its own address",
                )
            seen.setdefault(key, (node, address))
