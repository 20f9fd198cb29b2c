"""Checks before the swap and builds kept for instant rollback (issue 11, items 4 and 5),
over real processes: a check that fails keeps the old version serving under load, one that
passes swaps, and the check talks to the candidate itself (socket hand-off and proxy); with
`artifacts`, three rebuilds and a rollback to the first version under load, without a build.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pitstop.engine.events import ErrorReported
from pitstop.manager.manager import Manager
from pitstop.manager.status import ServiceState
from pitstop.supervisor import events as ev
from tests.helpers import async_wait_until, pid_alive
from tests.integration.manager.test_up import (
    DEADLINE,
    FD_APP,
    PORT_APP,
    Env,
    free_port,
    row,
    run,
    serving,
    stopped_cleanly,
)
from tests.load import Load

# The check fetches PITSTOP_CANDIDATE_URL, records what answered (one line per check run),
# and fails when that answer says "bad".
CHECK_PY = """
import os, sys, urllib.request
body = urllib.request.urlopen(os.environ["PITSTOP_CANDIDATE_URL"] + "/", timeout=10).read()
with open("seen", "a") as f:
    f.write(body.decode() + "\\n")
if b"bad" in body:
    print("check: the candidate answered", body.decode())
    sys.exit(1)
"""
BUILD = """
[tasks.build]
script = '''
echo run >> builds.log
if grep -q slow app/src; then echo $$ > build.pid; exec sleep 60; fi
mkdir -p out && cp app/src out/app
'''
"""
FD_SERVICE = """
[tasks.app]
dependencies = ["build"]
command = "{python}"
args = ["{app}", "{version_file}"]
watch = {{ watch = ["app"] }}
[tasks.app.service]
listen = "127.0.0.1:{port}"
ready = {{ notify = true }}
stop_timeout = "5s"
{extra}
"""
PROXY_SERVICE = """
[tasks.app]
dependencies = ["build"]
script = "VERSION=$(cat {version_file}) exec {python} {app}"
watch = {{ watch = ["app"] }}
[tasks.app.service]
proxy = "127.0.0.1:{port}"
ready = {{ http = "/health" }}
stop_timeout = "5s"
{extra}
"""


def project(env: Env, *, proxy: bool, extra: str, version_file: str = "out/app") -> None:
    env.ports["app"] = free_port()
    (env.root / "app").mkdir()
    (env.root / "app" / "src").write_text("app-v1\n")
    (env.root / "check.py").write_text(CHECK_PY)
    env.parts.append(BUILD)
    template = PROXY_SERVICE if proxy else FD_SERVICE
    env.parts.append(
        template.format(
            python=sys.executable,
            app=PORT_APP if proxy else FD_APP,
            port=env.ports["app"],
            version_file=version_file,
            extra=textwrap.dedent(extra),
        )
    )


def seen(env: Env) -> list[str]:
    return (env.root / "seen").read_text().split()


def builds_run(env: Env) -> int:
    return len((env.root / "builds.log").read_text().splitlines())


@pytest.mark.parametrize("proxy", [False, True], ids=["socket", "proxy"])
def test_a_failing_check_keeps_the_old_version_and_a_passing_one_swaps(
    tmp_path: Path, proxy: bool
) -> None:
    env = Env(tmp_path)
    project(env, proxy=proxy, extra=f'check = ["{sys.executable} check.py"]')

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            assert seen(env) == ["app-v1"]  # the first instance is checked too
            pid = row(manager, "app").pid
            async with Load.new_connections(env.address("app"), clients=2) as load:
                await load.async_wait_to_see("app-v1")
                env.write("app", "app-v2-bad")
                await async_wait_until(
                    lambda: any(isinstance(e, ev.CheckFailed) for e in env.events),
                    DEADLINE,
                    "the check of #2 fails",
                )
                await serving(manager, "app", version=1)
                await load.async_wait_for_more(20, each=True)
                assert not any("bad" in body for body in load.bodies)
                assert row(manager, "app").pid == pid

                env.write("app", "app-v3")
                await load.async_wait_to_see("app-v3")
                await serving(manager, "app", version=3)
                await load.async_wait_for_more(20, each=True)
            assert load.failures == []
            # Each check saw its own candidate, never the version that was serving.
            assert seen(env) == ["app-v1", "app-v2-bad", "app-v3"]
            failed = next(e for e in env.events if isinstance(e, ev.CheckFailed))
            assert failed.n == 2 and "failed with status 1" in failed.reason
            assert "check: the candidate answered app-v2-bad" in failed.output
            rolled = next(e for e in env.events if isinstance(e, ev.RolledBack))
            assert rolled.n == 2 and rolled.serving == 1 and "check.py" in rolled.reason
            stopped = [e.n for e in env.events if isinstance(e, ev.InstanceStopped)]
            assert 2 in stopped  # the candidate was stopped
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_a_check_that_hangs_is_cut_off_by_check_timeout(tmp_path: Path) -> None:
    env = Env(tmp_path)
    project(
        env,
        proxy=False,
        extra='check = ["echo $$ > check.pid; grep -q v2 out/app && exec sleep 60 || true"]\n'
        'check_timeout = "1s"',
    )

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            env.write("app", "app-v2")
            await async_wait_until(
                lambda: any(isinstance(e, ev.RolledBack) for e in env.events),
                DEADLINE,
                "#2 rolled back",
            )
            failed = next(e for e in env.events if isinstance(e, ev.CheckFailed))
            assert failed.reason == "did not finish within 1s"
            assert not pid_alive(int((tmp_path / "check.pid").read_text()))
            assert row(manager, "app").version == 1
            assert row(manager, "app").state is ServiceState.SERVING
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_kept_builds_roll_back_to_the_first_version_under_load_without_a_build(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    # The instance reads its version from its own kept copy, as a binary would run from it.
    project(
        env,
        proxy=False,
        extra='artifacts = ["out/app"]\nkeep_builds = 4',
        version_file="${PITSTOP_ARTIFACTS}/out/app",
    )
    builds = tmp_path / ".pitstop" / "builds" / "app"

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            async with Load.new_connections(env.address("app"), clients=2) as load:
                for n in (2, 3, 4):
                    env.write("app", f"app-v{n}")
                    await load.async_wait_to_see(f"app-v{n}")
                    await serving(manager, "app", version=n)
                # The build's own output was overwritten three times; the kept ones were not.
                assert (tmp_path / "out" / "app").read_text() == "app-v4\n"
                assert sorted(p.name for p in builds.iterdir()) == ["1", "2", "3", "4"]
                assert (builds / "1" / "out" / "app").read_text() == "app-v1\n"
                ran = builds_run(env)

                assert await manager.rollback("app", 1) == 1
                await load.async_wait_to_see("app-v1")
                await load.async_wait_for_more(20, each=True)
                assert load.bodies[-1] == "app-v1"
            assert load.failures == []
            assert builds_run(env) == ran  # no build ran
            assert row(manager, "app").version == 1
            assert (row(manager, "app").swaps, row(manager, "app").restarts) == (4, 0)

            # One more build: keep_builds newest plus the serving one stay, #2 goes.
            env.write("app", "app-v5")
            await serving(manager, "app", version=5)
            # Pruning follows the swap (the old instance is retired first): wait for it.
            await async_wait_until(
                lambda: sorted(p.name for p in builds.iterdir()) == ["2", "3", "4", "5"],
                DEADLINE,
                "the kept builds pruned to #2-#5",
            )
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_an_artifact_glob_that_matches_nothing_fails_the_build_at_its_line(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path)
    project(env, proxy=False, extra='artifacts = [\n    "out/app",\n    "out/missing*",\n]')

    async def scenario() -> None:
        manager: Manager = env.manager()
        try:
            assert await manager.start() is False
            errors = [e for e in env.events if isinstance(e, ErrorReported)]
            assert errors, env.events
            error = errors[0].error
            assert "'out/missing*' matched nothing" in error.message
            text = (tmp_path / "pitstop.toml").read_text()
            line = next(i for i, x in enumerate(text.splitlines(), start=1) if "out/missing*" in x)
            assert error.location is not None and error.location.line == line
            assert row(manager, "app").state is ServiceState.FAILED
            assert manager.pids() == []
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)


def test_stop_during_a_check_ends_the_check_and_the_candidate(tmp_path: Path) -> None:
    env = Env(tmp_path)
    project(
        env,
        proxy=True,
        extra='check = ["grep -q v2 out/app || exit 0; echo $$ > check.pid; exec sleep 60"]',
    )

    async def scenario() -> None:
        manager = env.manager()
        stopped = False
        try:
            assert await manager.start() is True
            env.write("app", "app-v2")
            pid_file = tmp_path / "check.pid"
            await async_wait_until(
                lambda: pid_file.exists() and pid_file.read_text().strip() != "",
                DEADLINE,
                "the check of #2 runs",
            )
            check_pid = int(pid_file.read_text())
            assert pid_alive(check_pid)
            assert row(manager, "app").version == 1  # the candidate takes no traffic yet
            await stopped_cleanly(manager, env)  # also: no instance left, the port is free
            stopped = True
            assert not pid_alive(check_pid)
        finally:
            if not stopped:
                await stopped_cleanly(manager, env)

    run(scenario)


def test_a_rollback_during_a_build_cancels_the_build(tmp_path: Path) -> None:
    env = Env(tmp_path)
    project(
        env,
        proxy=False,
        extra='artifacts = ["out/app"]',
        version_file="${PITSTOP_ARTIFACTS}/out/app",
    )

    async def scenario() -> None:
        manager = env.manager()
        try:
            assert await manager.start() is True
            env.write("app", "app-v2")
            await serving(manager, "app", version=2)
            env.write("app", "app-v3-slow")
            pid_file = tmp_path / "build.pid"
            await async_wait_until(
                lambda: pid_file.exists() and pid_file.read_text().strip() != "",
                DEADLINE,
                "the slow build runs",
            )
            async with Load.new_connections(env.address("app"), clients=2) as load:
                assert await manager.rollback("app") == 1  # the one before the serving #2
                await load.async_wait_to_see("app-v1")
                await load.async_wait_for_more(20, each=True)
            assert load.failures == []
            assert not pid_alive(int(pid_file.read_text()))  # the build was ended
            assert row(manager, "app").version == 1
        finally:
            await stopped_cleanly(manager, env)

    run(scenario)
