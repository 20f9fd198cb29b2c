"""The build hands the supervisor the new instance's command (it never writes into the
supervisor), gets the paths that changed since the last build, and every event names the
service and instance it is about."""

from __future__ import annotations

import sys
from pathlib import Path

from pitstop.engine.events import Source
from pitstop.supervisor.events import InstanceReady, Swapped
from pitstop.supervisor.instance import InstanceCommand
from pitstop.supervisor.supervisor import Supervisor
from tests.helpers import async_wait_until

from .support import DEADLINE, FD_APP, Harness, run


def test_the_command_the_build_returns_starts_the_next_instance(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1")
    (tmp_path / "elsewhere").write_text("built elsewhere")
    seen: list[frozenset[Path]] = []

    async def build(changes: frozenset[Path]) -> InstanceCommand | None:
        seen.append(changes)
        if not changes:
            return await h.build(changes)  # the first build: the harness's own command
        # A later build moves the artifact: only the command it returns knows where.
        argv = (sys.executable, str(FD_APP), str(tmp_path / "elsewhere"))
        return InstanceCommand(argv, tmp_path)

    async def scenario() -> None:
        assert h.command is not None
        sup = Supervisor(h.spec, h.command, build, h.events.append, name="web")
        h.supervisor = sup
        assert await sup.start()
        assert await h.get() == "v1"
        sup.changed([tmp_path / "src"])
        await sup.settled()
        assert await h.get() == "built elsewhere"
        await sup.stop()

    run(scenario())
    assert seen == [frozenset(), frozenset({tmp_path / "src"})]
    swaps = h.of_type(Swapped)
    assert [e.source for e in swaps] == [Source("web", 1), Source("web", 2)]
    assert all(e.source.name == "web" for e in h.events)
    assert [e.source for e in h.of_type(InstanceReady)] == [Source("web", 1), Source("web", 2)]


def test_a_cancelled_build_passes_its_changes_to_the_next(tmp_path: Path) -> None:
    h = Harness.fd_app(tmp_path, "v1")
    seen: list[frozenset[Path]] = []

    async def build(changes: frozenset[Path]) -> InstanceCommand | None:
        seen.append(changes)
        return await h.build(changes)

    first, second = tmp_path / "first.rs", tmp_path / "second.rs"

    async def scenario() -> None:
        assert h.command is not None
        sup = Supervisor(h.spec, h.command, build, h.events.append)
        h.supervisor = sup
        assert await sup.start()
        (tmp_path / "src").write_text("slow")
        sup.changed([first])
        await async_wait_until(lambda: (tmp_path / "build.pid").exists(), DEADLINE, "slow build")
        (tmp_path / "src").write_text("v3")
        sup.changed([second])  # cancels the slow build
        await sup.settled()
        assert await h.get() == "v3"
        await sup.stop()

    run(scenario())
    assert seen == [frozenset(), frozenset({first}), frozenset({first, second})]
