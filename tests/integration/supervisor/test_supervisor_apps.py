"""Real servers swapped by a Supervisor: uvicorn --fd 3, the Rust example built with cargo,
a $PORT app behind the proxy, and what happens when pitstop itself is SIGKILLed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pitstop.errors import Location
from pitstop.supervisor.events import InstanceOutput, ListenerTally, SwapFinished, Swapped
from pitstop.supervisor.instance import InstanceCommand
from pitstop.taskfile.service import parse_service
from tests.helpers import pid_alive, wait_until
from tests.load import Load

from .support import APPS, DEADLINE, Harness, run

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def where(root: Path) -> Location:
    return Location(root / "pitstop.toml")


def uvicorn_harness(tmp_path: Path, raw: dict[str, object], argv: tuple[str, ...]) -> Harness:
    shutil.copy(EXAMPLES / "uvicorn-app" / "app.py", tmp_path / "app.py")
    spec = parse_service(raw, where(tmp_path))
    return Harness(tmp_path, spec, InstanceCommand(argv, tmp_path))


def set_version(app: Path, version: str) -> None:
    text = app.read_text()
    start = text.index('VERSION = "') + len('VERSION = "')
    app.write_text(text[:start] + version + text[text.index('"', start) :])


def test_uvicorn_fd3_app_swaps_under_load_without_a_failed_request(tmp_path: Path) -> None:
    """Socket hand-off with uvicorn, a server that is not ours: on SIGTERM it closes the
    connections it accepted but has not read a request from (h11_impl.shutdown closes a
    connection whose `cycle` is None). With one shared socket a request arriving at that
    instant was reset; with a socket per instance the old one only gets SIGTERM once its
    queue is empty and what it accepted has been read."""
    h = uvicorn_harness(
        tmp_path,
        {"listen": "127.0.0.1:0", "ready": {"log": "Uvicorn running on"}},
        (sys.executable, "-m", "uvicorn", "app:app", "--fd", "3", "--no-access-log"),
    )
    versions = [f"v{i}" for i in range(2, 7)]

    async def scenario() -> Load:
        sup = h.make(with_build=False)
        assert await sup.start()
        async with Load.new_connections(h.address, clients=4) as load:
            await load.async_wait_to_see("v1")
            for version in versions:
                set_version(tmp_path / "app.py", version)
                sup.changed([tmp_path / "app.py"])
                await sup.settled()
                await load.async_wait_to_see(version)
                await load.async_wait_for_more(20)
        h.traffic = sup.traffic()
        await sup.stop()
        return load

    load = run(scenario())
    print(f"{len(load.bodies)} requests, {len(load.failures)} failed")
    assert load.failures == []
    assert [e.new for e in h.of_type(Swapped)] == [1, 2, 3, 4, 5, 6]
    assert {b.split()[-1] for b in load.bodies} == {"v1", *versions}
    # What socket mode can count agrees: no connection dropped or reset at a listener.
    swaps = h.of_type(SwapFinished)
    assert [(e.old, e.new) for e in swaps] == [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert all((e.served, e.dropped, e.reset, e.failed) == (None, 0, 0, 0) for e in swaps), swaps
    assert h.traffic == ListenerTally(dropped=0, reset=0)


def test_uvicorn_behind_the_proxy_swaps_under_load_without_a_failed_request(
    tmp_path: Path,
) -> None:
    h = uvicorn_harness(
        tmp_path,
        {"proxy": "127.0.0.1:0", "ready": {"http": "/"}},
        (
            "/bin/sh",
            "-c",
            f'exec "{sys.executable}" -m uvicorn app:app --no-access-log '
            '--host "$HOST" --port "$PORT"',
        ),
    )

    async def scenario() -> Load:
        sup = h.make(with_build=False)
        assert await sup.start()
        async with Load.new_connections(h.address) as load:
            await load.async_wait_to_see("v1")
            for version in ("v2", "v3"):
                set_version(tmp_path / "app.py", version)
                sup.changed([tmp_path / "app.py"])
                await sup.settled()
                await load.async_wait_to_see(version)
        await sup.stop()
        return load

    load = run(scenario())
    assert load.failures == []
    assert [e.new for e in h.of_type(Swapped)] == [1, 2, 3]


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
def test_rust_example_is_built_and_swapped(tmp_path: Path) -> None:
    project = tmp_path / "rust-service"
    shutil.copytree(EXAMPLES / "rust-service", project, ignore=shutil.ignore_patterns("target*"))
    main_rs = project / "src" / "main.rs"
    # Share the example's own target dir (std only, so a warm build takes about a second).
    env = {**os.environ, "CARGO_TARGET_DIR": str(EXAMPLES / "rust-service" / "target-tests")}
    spec = parse_service(
        {"listen": ["127.0.0.1:0"], "ready": {"notify": True}, "ready_timeout": "30s"},
        where(project),
    )
    binary = Path(env["CARGO_TARGET_DIR"]) / "debug" / "rust-service"
    h = Harness(project, spec, InstanceCommand((str(binary),), project, env))

    async def build(_changes: frozenset[Path]) -> InstanceCommand | None:
        from pitstop.engine import process

        child = await process.spawn(
            ["cargo", "build", "--quiet"], cwd=project, env=env, on_line=lambda *_: None
        )
        try:
            ok = await child.wait() == 0
        except BaseException:
            await child.terminate()
            raise
        return h.command if ok else None

    h.build = build  # type: ignore[method-assign]

    async def scenario() -> Load:
        sup = h.make()
        assert await sup.start(), h.events
        async with Load.new_connections(h.address, clients=4) as load:
            await load.async_wait_to_see("rust-service v1")
            for old, new in (("v1", "v2"), ("v2", "v3"), ("v3", "v4")):
                main_rs.write_text(main_rs.read_text().replace(f'"{old}"', f'"{new}"'))
                sup.changed([main_rs])
                await sup.settled()
                await load.async_wait_to_see(f"rust-service {new}")
                await load.async_wait_for_more(20)
            main_rs.write_text(main_rs.read_text().replace('"v4"', "v5 syntax error"))
            sup.changed([main_rs])
            await sup.settled()
        assert "build #5 failed" in h.events[-1].text  # type: ignore[union-attr]
        await sup.stop()
        return load

    load = run(scenario(), timeout=120)
    print(f"{len(load.bodies)} requests, {len(load.failures)} failed")
    assert load.failures == []
    assert load.bodies[-1] == "hello from rust-service v4"
    said = [e.line for e in h.events if isinstance(e, InstanceOutput)]
    assert any(re.fullmatch(r"rust-service v1 listening on 127\.0\.0\.1:\d+", s) for s in said), (
        said
    )


def test_proxy_mode_swaps_a_port_app(tmp_path: Path) -> None:
    (tmp_path / "src").write_text("v1")
    spec = parse_service(
        {"proxy": "127.0.0.1:0", "ready": {"http": "/health"}, "drain_timeout": "5s"},
        where(tmp_path),
    )
    # port_app reads its VERSION from the environment; the "artifact" is the version file.
    script = f'VERSION=$(cat version) exec "{sys.executable}" "{APPS / "port_app.py"}"'
    h = Harness(tmp_path, spec, InstanceCommand(("/bin/sh", "-c", script), tmp_path))

    async def scenario() -> Load:
        sup = h.make()
        assert await sup.start()
        async with Load.new_connections(h.address) as load:
            await load.async_wait_to_see("v1")
            h.release("v2")
            await sup.settled()
            await load.async_wait_to_see("v2")
        await sup.stop()
        return load

    load = run(scenario())
    assert load.failures == []


def test_sigkill_of_pitstop_leaves_no_instance(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, str(APPS / "supervise.py"), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("SERVING "), line
        _, pid_text, port_text = line.split()
        instance_pid, port = int(pid_text), int(port_text)
        assert pid_alive(instance_pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        wait_until(lambda: not pid_alive(instance_pid), DEADLINE, "instance outlived pitstop")
    finally:
        proc.kill()
        proc.wait()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
