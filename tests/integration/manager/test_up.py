"""The manager over real processes: services with dependencies started in readiness order,
each rebuilt and swapped on its own change under load, a shared build run once, a broken
build or a failing dependency contained. Every service is a real server on 127.0.0.1
(tests/apps/fd_app.py on socket hand-off, tests/apps/port_app.py behind the proxy); every
change is a real file write seen by the real watcher."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

from pitstop.app.up import prepare_up
from pitstop.engine.events import TaskOutput, TaskStarted
from pitstop.manager.manager import Manager, ManagerEvent
from pitstop.manager.status import ServiceState, ServiceStatus, StateChanged
from pitstop.request import Command, UpFlags, UserRequest
from pitstop.taskfile.loader import load_taskfile
from tests.helpers import async_wait_until, free_port, pid_alive, port_open, script_pids
from tests.load import Load, http_get

APPS = Path(__file__).resolve().parents[2] / "apps"
FD_APP = APPS / "fd_app.py"
PORT_APP = APPS / "port_app.py"
DEADLINE = 30.0

# A build that copies NAME/src to out/NAME (what the service reads at start-up), or fails
# like a compiler when the source says "broken".
BUILD = """
[tasks.build-{name}]
script = '''
if grep -q broken {name}/src; then echo "error: {name}/src is broken" >&2; exit 1; fi
mkdir -p out && cp {name}/src out/{name}
'''
"""
FD_SERVICE = """
[tasks.{name}]
dependencies = [{deps}]
command = "{python}"
args = ["{app}", "out/{name}"]
watch = {{ watch = ["{name}"] }}
service = {{ listen = "127.0.0.1:{port}", ready = {{ notify = true }}, stop_timeout = "5s" }}
"""
PROXY_SERVICE = """
[tasks.{name}]
dependencies = [{deps}]
script = "VERSION=$(cat out/{name}) exec {python} {app}"
watch = {{ watch = ["{name}"] }}
service = {{ proxy = "127.0.0.1:{port}", ready = {{ http = "/health" }}, stop_timeout = "5s" }}
"""


class Env:
    """A project folder with one source folder per service, and the manager over it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports: dict[str, int] = {}
        self.parts: list[str] = []
        self.events: list[ManagerEvent] = []

    def service(
        self,
        name: str,
        deps: list[str],
        *,
        proxy: bool = False,
        build: bool = True,
        version: str | None = None,
    ) -> None:
        self.ports[name] = free_port()
        (self.root / name).mkdir()
        (self.root / name / "src").write_text((version or f"{name}-v1") + "\n")
        if build:
            self.parts.append(BUILD.format(name=name))
            deps = [*deps, f"build-{name}"]
        template = PROXY_SERVICE if proxy else FD_SERVICE
        self.parts.append(
            template.format(
                name=name,
                deps=", ".join(f'"{d}"' for d in deps),
                python=sys.executable,
                app=PORT_APP if proxy else FD_APP,
                port=self.ports[name],
            )
        )

    def manager(self, *services: str, watch: bool = True) -> Manager:
        (self.root / "pitstop.toml").write_text("\n".join(textwrap.dedent(p) for p in self.parts))
        taskfile = load_taskfile(None, self.root)
        request = UserRequest(Command.UP, up=UpFlags(services=services, watch=watch))
        project, graph = prepare_up(taskfile, request, self.root, None)
        manager = Manager(project, graph, watch=watch)
        manager.subscribe(self.events.append)
        return manager

    def address(self, name: str) -> tuple[str, int]:
        return ("127.0.0.1", self.ports[name])

    def write(self, name: str, text: str) -> None:
        (self.root / name / "src").write_text(text + "\n")

    def states(self) -> list[tuple[str, ServiceState]]:
        return [(e.status.name, e.status.state) for e in self.events if isinstance(e, StateChanged)]


def row(manager: Manager, name: str) -> ServiceStatus:
    return next(r for r in manager.status() if r.name == name)


def run(test: Callable[[], Awaitable[None]], timeout: float = 90.0) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout))


async def stopped_cleanly(manager: Manager, env: Env) -> None:
    """stop() leaves no instance running and every address free."""
    pids = manager.pids()
    await manager.stop()
    assert manager.pids() == []
    assert [p for p in pids if pid_alive(p)] == []
    for name in env.ports:
        assert not port_open(*env.address(name)), f"{name}'s port still answers"
    assert {r.state for r in manager.status()} == {ServiceState.STOPPED}


async def serving(manager: Manager, *names: str, version: int | None = None) -> None:
    def ready() -> bool:
        rows = {r.name: r for r in manager.status()}
        return all(
            rows[n].state is ServiceState.SERVING
            and (version is None or rows[n].version == version)
            for n in names
        )

    await async_wait_until(ready, DEADLINE, f"{names} serving")


def three(env: Env) -> None:
    """db <- api <- web: two on socket hand-off, the front one behind the proxy."""
    env.service("db", [])
    env.service("api", ["db"])
    env.service("web", ["api"], proxy=True)


def test_three_services_start_in_readiness_order_and_a_change_swaps_only_its_own(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    three(env)

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            states = env.states()
            # Nothing of a service happens before the services it depends on serve.
            first = {
                name: states.index(next(s for s in states if s[0] == name)) for name in env.ports
            }
            assert first["api"] > states.index(("db", ServiceState.SERVING))
            assert first["web"] > states.index(("api", ServiceState.SERVING))
            pids = {r.name: r.pid for r in manager.status()}
            loads = [Load.new_connections(env.address(n), clients=2) for n in ("db", "api", "web")]
            for load in loads:
                await load.__aenter__()
            try:
                for load, name in zip(loads, ("db", "api", "web"), strict=True):
                    await load.async_wait_to_see(f"{name}-v1")
                env.write("api", "api-v2")
                await loads[1].async_wait_to_see("api-v2")
                await serving(manager, "api", version=2)
                for load in loads:
                    await load.async_wait_for_more(20, each=True)
            finally:
                for load in loads:
                    await load.__aexit__()
            for load in loads:
                assert load.failures == []
            assert row(manager, "api").pid != pids["api"]
            assert row(manager, "db").pid == pids["db"] and row(manager, "db").version == 1
            assert row(manager, "web").pid == pids["web"] and row(manager, "web").version == 1
            assert loads[0].saw("db-v1") and loads[2].saw("web-v1")
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_a_broken_build_of_one_leaves_all_three_serving(tmp_path: Path) -> None:
    env = Env(tmp_path)
    three(env)

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            pids = {r.name: r.pid for r in manager.status()}
            async with Load.new_connections(env.address("web"), clients=2) as load:
                env.write("api", "broken")
                await async_wait_until(
                    lambda: row(manager, "api").last_build_ok is False,
                    DEADLINE,
                    "api's build fails",
                )
                await load.async_wait_for_more(20, each=True)
            assert load.failures == []
            for name in ("db", "api", "web"):
                current = row(manager, name)
                assert current.state is ServiceState.SERVING, current
                assert (current.pid, current.version) == (pids[name], 1)
            reason = row(manager, "api").reason
            assert reason is not None and "build #2 failed" in reason
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_a_shared_build_runs_once_and_both_dependants_swap(tmp_path: Path) -> None:
    env = Env(tmp_path)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "src").write_text("s-v1\n")
    env.parts.append(
        """
        [tasks.compile]
        script = '''
        mkdir -p out && echo run >> out/compiled && cp shared/src out/shared
        '''
        """
    )
    for name in ("left", "right"):
        env.ports[name] = free_port()
        env.parts.append(
            f"""
            [tasks.{name}]
            dependencies = ["compile"]
            command = "{sys.executable}"
            args = ["{FD_APP}", "out/shared"]
            watch = {{ watch = ["shared"] }}
            service = {{ listen = "127.0.0.1:{env.ports[name]}", ready = {{ notify = true }} }}
            """
        )

    def compiled() -> int:
        return len((tmp_path / "out" / "compiled").read_text().splitlines())

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            assert compiled() == 1  # the first batch too: both started on one compile
            async with (
                Load.new_connections(env.address("left")) as left,
                Load.new_connections(env.address("right")) as right,
            ):
                (tmp_path / "shared" / "src").write_text("s-v2\n")
                await serving(manager, "left", "right", version=2)
                await left.async_wait_to_see("s-v2")
                await right.async_wait_to_see("s-v2")
            assert compiled() == 2
            assert left.failures == [] and right.failures == []
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_a_failing_dependency_blocks_its_dependants_only(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.service("db", [], version="broken")
    env.service("api", ["db"])
    env.service("web", ["api"], proxy=True)
    env.service("solo", [])

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is False
            rows = {r.name: r for r in manager.status()}
            assert rows["db"].state is ServiceState.FAILED
            assert rows["solo"].state is ServiceState.SERVING
            for name, dep in (("api", "db"), ("web", "api")):
                assert rows[name].state is ServiceState.BLOCKED
                assert rows[name].reason is not None and f"waiting for {dep}" in rows[name].reason
                assert rows[name].pid is None
            # Once the dependency is fixed, what waited for it starts, in order.
            env.write("db", "db-v2")
            await serving(manager, "db", "api", "web")
            states = env.states()
            assert states.index(("api", ServiceState.SERVING)) > states.index(
                ("db", ServiceState.SERVING)
            )
            assert states.index(("web", ServiceState.SERVING)) > states.index(
                ("api", ServiceState.SERVING)
            )
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_a_trigger_file_swaps_a_service_without_a_build(tmp_path: Path) -> None:
    """The write-ups' first recipe: another tool writes a trigger file; the service swaps."""
    env = Env(tmp_path)
    env.service("app", [], build=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "app").write_text("app-v1\n")
    (tmp_path / "trigger").write_text("")
    env.parts[-1] = env.parts[-1].replace(
        'watch = { watch = ["app"] }', 'watch = { watch = ["trigger"] }'
    )

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            (tmp_path / "out" / "app").write_text("app-v2\n")  # not watched: nothing happens
            (tmp_path / "trigger").write_text("go\n")
            await serving(manager, "app", version=2)
            assert row(manager, "app").last_build_ok is None  # nothing to build
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_builds_of_different_services_run_in_parallel_up_to_jobs(tmp_path: Path) -> None:
    """Each build waits (with a deadline) until the other one has started: they only both
    succeed if they run at the same time."""
    env = Env(tmp_path)
    (tmp_path / "out").mkdir()
    for name, other in (("a", "b"), ("b", "a")):
        env.ports[name] = free_port()
        (tmp_path / name).mkdir()
        (tmp_path / "out" / name).write_text(f"{name}-v1\n")
        env.parts.append(
            f"""
            [tasks.build-{name}]
            script = '''
            touch out/{name}.started
            for i in $(seq 200); do [ -e out/{other}.started ] && exit 0; sleep 0.05; done
            echo "{other} never started beside {name}" >&2; exit 1
            '''

            [tasks.{name}]
            dependencies = ["build-{name}"]
            command = "{sys.executable}"
            args = ["{FD_APP}", "out/{name}"]
            watch = {{ watch = ["{name}"] }}
            service = {{ listen = "127.0.0.1:{env.ports[name]}", ready = {{ notify = true }} }}
            """
        )

    async def scenario() -> None:
        manager = env.manager()
        manager.jobs = 2
        try:
            assert await manager.start() is True
            assert {r.last_build_ok for r in manager.status()} == {True}
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_restarts_count_crash_restarts_only_and_swaps_the_rest(tmp_path: Path) -> None:
    """A crash restart is a restart; a fresh instance of the same version (what
    `on_limit = "swap"` does) and a new build are swaps."""
    env = Env(tmp_path)
    env.service("db", [])

    async def scenario() -> None:
        manager = env.manager(watch=False)
        try:
            assert await manager.start() is True
            first = row(manager, "db").pid
            with contextlib.suppress(OSError):  # fd_app dies holding this connection
                await asyncio.to_thread(http_get, env.address("db"), 5.0, "/crash")
            await async_wait_until(
                lambda: (
                    row(manager, "db").state is ServiceState.SERVING
                    and row(manager, "db").pid not in (None, first)
                ),
                DEADLINE,
                "the crash restart",
            )
            assert (row(manager, "db").swaps, row(manager, "db").restarts) == (0, 1)
            supervisor = manager._services["db"].supervisor  # what on_limit = "swap" calls
            assert supervisor is not None
            supervisor.replace_instance()
            await supervisor.settled()
            await manager.restart("db")
            assert row(manager, "db").version == 3
            assert (row(manager, "db").swaps, row(manager, "db").restarts) == (2, 1)
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_restart_stop_and_start_one_service(tmp_path: Path) -> None:
    """The verbs the control socket calls: restart swaps without downtime; stop_service frees
    its address and leaves the others serving; start_service brings it back."""
    env = Env(tmp_path)
    env.service("db", [])
    env.service("api", ["db"])

    async def scenario() -> None:
        manager = env.manager(watch=False)
        try:
            assert await manager.start() is True
            api_pid = row(manager, "api").pid
            async with Load.new_connections(env.address("db"), clients=2) as load:
                await manager.restart("db")
                assert row(manager, "db").version == 2
                # A swap to a new build, not a crash restart.
                assert (row(manager, "db").swaps, row(manager, "db").restarts) == (1, 0)
                await load.async_wait_for_more(20, each=True)
            assert load.failures == []
            await manager.stop_service("db")
            assert row(manager, "db").state is ServiceState.STOPPED
            assert not port_open(*env.address("db"))
            assert row(manager, "api").state is ServiceState.SERVING
            assert row(manager, "api").pid == api_pid
            await manager.start_service("db")
            assert row(manager, "db").state is ServiceState.SERVING
            assert port_open(*env.address("db"))
            # Numbers go on: the logs never show two different `db#2`s.
            assert row(manager, "db").version == 3
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_after_a_shared_build_dependencies_swap_first(tmp_path: Path) -> None:
    env = Env(tmp_path)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "src").write_text("s-v1\n")
    env.parts.append(
        """
        [tasks.compile]
        script = "mkdir -p out && cp shared/src out/shared"
        """
    )
    for name, deps in (("back", '"compile"'), ("front", '"back", "compile"')):
        env.ports[name] = free_port()
        env.parts.append(
            f"""
            [tasks.{name}]
            dependencies = [{deps}]
            command = "{sys.executable}"
            args = ["{FD_APP}", "out/shared"]
            watch = {{ watch = ["shared"] }}
            service = {{ listen = "127.0.0.1:{env.ports[name]}", ready = {{ notify = true }} }}
            """
        )

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            env.events.clear()
            (tmp_path / "shared" / "src").write_text("s-v2\n")
            await serving(manager, "back", "front", version=2)
            states = env.states()
            back_swapped = states.index(("back", ServiceState.SERVING))
            assert states.index(("front", ServiceState.SWAPPING)) > back_swapped
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_a_service_whose_address_is_taken_fails_and_blocks_only_its_dependants(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    env.service("db", [])
    env.service("api", ["db"])
    env.service("solo", [])
    with socket.socket() as squatter:
        squatter.bind(env.address("db"))
        squatter.listen()

        async def scenario() -> None:
            manager = env.manager(watch=False)
            try:
                assert await manager.start() is False
                db = row(manager, "db")
                assert db.state is ServiceState.FAILED
                assert db.reason is not None and db.reason.startswith("cannot listen")
                assert row(manager, "api").state is ServiceState.BLOCKED
                assert row(manager, "solo").state is ServiceState.SERVING
            finally:
                pids = manager.pids()
                await manager.stop()
                assert [p for p in pids if pid_alive(p)] == []

        run(scenario)


def test_build_events_name_the_services_they_build(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.parts.append(
        """
        [tasks.compile]
        script = "echo compiling shared; mkdir -p out; echo v1 > out/shared"
        """
    )
    for name in ("left", "right"):
        env.ports[name] = free_port()
        env.parts.append(
            f"""
            [tasks.own-{name}]
            script = "echo compiling {name}"

            [tasks.{name}]
            dependencies = ["compile", "own-{name}"]
            command = "{sys.executable}"
            args = ["{FD_APP}", "out/shared"]
            service = {{ listen = "127.0.0.1:{env.ports[name]}", ready = {{ notify = true }} }}
            """
        )

    async def scenario() -> None:
        manager = env.manager(watch=False)
        try:
            assert await manager.start() is True
        finally:
            await stopped_cleanly(manager, env)
        lines = {(e.name, e.line, e.services) for e in env.events if isinstance(e, TaskOutput)}
        assert lines == {
            ("compile", "compiling shared", ("left", "right")),
            ("own-left", "compiling left", ("left",)),
            ("own-right", "compiling right", ("right",)),
        }
        started = {e.name: e.services for e in env.events if isinstance(e, TaskStarted)}
        assert started["compile"] == ("left", "right")
        assert started["own-right"] == ("right",)

    run(scenario)


# Behind the proxy: on SIGTERM it says so (stopping-NAME), waits a bounded while for its
# peers to say so too, notes which peers did and which services had exited by then, and exits.
STOPPER = """
import http.server, json, os, pathlib, signal, sys, time
name, peers, before = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
here = pathlib.Path.cwd()

def on_term(*_):
    (here / f"stopping-{name}").touch()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
        (here / f"stopping-{p}").exists() for p in peers
    ):
        time.sleep(0.02)
    report = {
        "peers": [p for p in peers if (here / f"stopping-{p}").exists()],
        "exited": [b for b in before if (here / f"exited-{b}").exists()],
    }
    (here / f"report-{name}").write_text(json.dumps(report))
    (here / f"exited-{name}").touch()
    os._exit(0)

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

signal.signal(signal.SIGTERM, on_term)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Health).serve_forever()
"""


def test_stop_stops_independent_services_together_and_dependants_first(tmp_path: Path) -> None:
    import json

    env = Env(tmp_path)
    (tmp_path / "stopper.py").write_text(STOPPER)
    # db <- api, db <- worker; solo alone. api, worker and solo have no dependants: they stop
    # together; db once api and worker have exited.
    layout = {
        "db": ([], "", "api worker"),
        "api": (["db"], "worker solo", ""),
        "worker": (["db"], "api solo", ""),
        "solo": ([], "api worker", ""),
    }
    for name, (deps, peers, before) in layout.items():
        env.ports[name] = free_port()
        env.parts.append(
            f"""
            [tasks.{name}]
            dependencies = [{", ".join(f'"{d}"' for d in deps)}]
            command = "{sys.executable}"
            args = ["stopper.py", "{name}", "{peers}", "{before}"]
            service = {{ proxy = "127.0.0.1:{env.ports[name]}", ready = {{ http = "/" }}, stop_timeout = "20s" }}
            """
        )

    async def scenario() -> None:
        manager = env.manager(watch=False)
        try:
            assert await manager.start() is True
        finally:
            await stopped_cleanly(manager, env)
        reports = {name: json.loads((tmp_path / f"report-{name}").read_text()) for name in layout}
        for name, (_, peers, before) in layout.items():
            assert reports[name] == {"peers": peers.split(), "exited": before.split()}, name

    run(scenario)


def _notices(env: Env, word: str) -> list[str]:
    from pitstop.engine.events import Notice

    return [e.message for e in env.events if isinstance(e, Notice) and word in e.message]


def test_a_task_file_edit_swaps_only_the_services_it_redefines(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.service("db", [])
    env.service("api", ["db"])
    env.service("web", [])

    def rewrite(old: str, new: str) -> None:
        path = tmp_path / "pitstop.toml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            pids = {r.name: r.pid for r in manager.status()}
            # A comment: reloaded, nothing swaps.
            rewrite("[tasks.db]", "# the database\n[tasks.db]")
            await async_wait_until(
                lambda: _notices(env, "no service's definition changed"), DEADLINE, "reload"
            )
            assert _notices(env, "rebuilding") == []
            # api's env: api alone rebuilds and swaps, under load; db and web keep serving.
            rewrite(
                f'args = ["{FD_APP}", "out/api"]',
                f'args = ["{FD_APP}", "out/api"]\nenv = {{ X = "1" }}',
            )
            async with Load.new_connections(env.address("api")) as load:
                await serving(manager, "api", version=2)
                await load.async_wait_for_more(20)
            assert load.failures == []
            assert _notices(env, "rebuilding") == [
                "pitstop.toml changed their definition: rebuilding api"
            ]
            for name in ("db", "web"):
                assert (row(manager, name).pid, row(manager, name).version) == (pids[name], 1)
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_a_key_misspelt_in_a_reloaded_task_file_is_warned_about(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.service("api", [])

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            path = tmp_path / "pitstop.toml"
            path.write_text(path.read_text().replace("[tasks.api]", "[tasks.api]\nstop_timout = 1"))
            await async_wait_until(lambda: _notices(env, "reloaded"), DEADLINE, "reload")
            assert _notices(env, 'task "api": unknown key "stop_timout"') != []
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_a_service_added_to_the_task_file_starts_and_one_removed_stops(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.service("api", [])
    env.service("web", [])

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            api_pid = row(manager, "api").pid
            web_pids = manager.pids()
            # web out, extra in, in one save.
            env.parts = [p for p in env.parts if "[tasks.web]" not in p and "build-web" not in p]
            env.service("extra", ["api"])
            del env.ports["web"]
            (tmp_path / "pitstop.toml").write_text("\n".join(textwrap.dedent(p) for p in env.parts))
            await async_wait_until(lambda: _notices(env, "reloaded"), DEADLINE, "reload")
            assert [r.name for r in manager.status()] == ["api", "extra"]
            await serving(manager, "extra")
            await async_wait_until(
                lambda: not any(pid_alive(p) for p in set(web_pids) - {api_pid}),
                DEADLINE,
                "web's instance ended",
            )
            assert row(manager, "api").pid == api_pid and row(manager, "api").version == 1
            [said] = _notices(env, "reloaded")
            assert "web is no longer in it: stopping it" in said
            assert "extra is new: starting it" in said
            # Its own watch path (a folder nobody watched before) is watched now.
            env.write("extra", "extra-v2")
            await serving(manager, "extra", version=2)
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_a_changed_service_table_restarts_that_service_on_it(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.service("api", [])
    env.service("web", [])

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            web_pid = row(manager, "web").pid
            # api, stopped by request, stays stopped: it starts on its new table when asked.
            await manager.stop_service("api")
            old_port, new_port = env.ports["web"], free_port()
            api_port = free_port()
            path = tmp_path / "pitstop.toml"
            text = path.read_text().replace(f":{old_port}", f":{new_port}")
            path.write_text(text.replace(f":{env.ports['api']}", f":{api_port}"))
            env.ports["web"], env.ports["api"] = new_port, api_port
            await async_wait_until(lambda: _notices(env, "reloaded"), DEADLINE, "reload")
            [said] = _notices(env, "reloaded")
            assert "web's service table changed: restarting it (not zero-downtime)" in said
            await async_wait_until(
                lambda: (
                    row(manager, "web").address == f"127.0.0.1:{new_port}"
                    and row(manager, "web").state is ServiceState.SERVING
                    and row(manager, "web").pid != web_pid
                ),
                DEADLINE,
                "web on its new address",
            )
            assert port_open("127.0.0.1", new_port) and not port_open("127.0.0.1", old_port)
            assert "api's" not in said
            assert row(manager, "api").state is ServiceState.STOPPED
            await manager.start_service("api")
            assert row(manager, "api").address == f"127.0.0.1:{api_port}"
            assert port_open("127.0.0.1", api_port)
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_a_task_file_with_no_service_left_is_reported_and_changes_nothing(tmp_path: Path) -> None:
    from pitstop.engine.events import ErrorReported

    env = Env(tmp_path)
    env.service("api", [])

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            pid = row(manager, "api").pid
            (tmp_path / "pitstop.toml").write_text('[tasks.lint]\ncommand = "true"\n')

            def reported() -> list[str]:
                return [
                    e.error.message
                    for e in env.events
                    if isinstance(e, ErrorReported) and e.source is None
                ]

            await async_wait_until(reported, DEADLINE, "the error")
            assert reported() == ["no service task in pitstop.toml any more"]
            assert (row(manager, "api").state, row(manager, "api").pid) == (
                ServiceState.SERVING,
                pid,
            )
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_two_starts_of_one_service_at_once_run_one_supervisor(tmp_path: Path) -> None:
    """As when `pitstop start api` comes while a task file edit restarts api: every start goes
    through Manager._launch, which starts a service once."""
    env = Env(tmp_path)
    env.service("api", [])

    async def scenario() -> None:
        manager = env.manager(watch=False)
        try:
            assert await manager.start() is True
            await manager.stop_service("api")
            svc = manager._services["api"]
            manager._launch(svc)
            manager._launch(svc)
            await manager.start_service("api")
            await serving(manager, "api")
        finally:
            await stopped_cleanly(manager, env)
        assert script_pids(FD_APP.name, tmp_path.resolve()) == []

    run(scenario)


def test_a_start_asked_for_while_up_stops_is_refused(tmp_path: Path) -> None:
    """As `pitstop start api` during `pitstop down`: api must not start after its stop."""
    from pitstop.errors import UserError

    env = Env(tmp_path)
    env.service("db", [])
    env.service("api", ["db"])

    async def scenario() -> None:
        manager = env.manager(watch=False)
        assert await manager.start() is True
        pids = manager.pids()
        stopping = asyncio.create_task(manager.stop())
        await async_wait_until(
            lambda: row(manager, "api").state is ServiceState.STOPPED, DEADLINE, "api stopped"
        )
        try:
            await manager.start_service("api")
        except UserError as error:
            assert error.message == "api is not started: pitstop up is stopping"
        else:
            raise AssertionError("api was started while up was stopping")
        finally:
            await stopping
            assert manager.pids() == []
            assert [p for p in pids if pid_alive(p)] == []
            assert script_pids(FD_APP.name, tmp_path.resolve()) == []

    run(scenario)
