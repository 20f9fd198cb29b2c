"""The posix_spawn path of process.spawn, and the reaper's batched registrations, on real children.

The fast path must start children exactly as subprocess.Popen did: a new session, the
child's own PATH, SIGPIPE back to its default, the same errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pitstop.engine import process, reaper

T = TypeVar("T")

pytestmark = pytest.mark.skipif(
    not (process._CAN_POSIX_SPAWN and process._pidfds_work()), reason="no posix_spawn/pidfd"
)


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def output_of(argv: list[str], **kwargs: Any) -> tuple[int, list[str]]:
    lines: list[str] = []
    child = await process.spawn(argv, on_line=lambda _s, line: lines.append(line), **kwargs)
    return await child.wait(), lines


def test_the_program_is_found_along_the_childs_path_and_resolved_once_per_run(
    tmp_path: Path,
) -> None:
    tool = tmp_path / "only-here"
    tool.write_text("#!/bin/sh\necho found $1\n")
    tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}"}
    seen: list[dict[tuple[str, str | None, str], str | None] | None] = []

    async def main() -> list[tuple[int, list[str]]]:
        with process.keep_watching():
            results = [await output_of(["only-here", str(i)], env=env) for i in range(3)]
            seen.append(process._run_resolved.get())
        return results

    assert run(main()) == [(0, ["found 0"]), (0, ["found 1"]), (0, ["found 2"])]
    assert seen[0] is not None
    assert [v for (name, _path, _cwd), v in seen[0].items() if name == "only-here"] == [str(tool)]
    assert process._run_resolved.get() is None  # the run's cache went with the run


def test_a_tool_installed_or_removed_between_runs_is_seen(tmp_path: Path) -> None:
    # A long-lived pitstop (--watch, up) runs again and again in one process.
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for folder in (first, second):
        (folder / "the-tool").write_text(f"#!/bin/sh\necho {folder.name}\n")
    (second / "the-tool").chmod(0o755)
    env = {**os.environ, "PATH": f"{first}{os.pathsep}{second}{os.pathsep}{os.environ['PATH']}"}

    async def one_run() -> list[str]:
        with process.keep_watching():
            return (await output_of(["the-tool"], env=env))[1]

    async def main() -> list[list[str]]:
        before = await one_run()
        (first / "the-tool").chmod(0o755)  # installed earlier on PATH
        installed = await one_run()
        (first / "the-tool").unlink()  # and removed again
        removed = await one_run()
        return [before, installed, removed]

    assert run(main()) == [["second"], ["first"], ["second"]]


def test_sigpipe_is_not_ignored_in_the_child() -> None:
    # Python ignores SIGPIPE; an ignored signal stays ignored across exec unless reset.
    status, lines = run(output_of(["sh", "-c", "grep SigIgn /proc/self/status"]))
    assert status == 0
    ignored = int(lines[0].split()[1], 16)
    assert not ignored & (1 << (13 - 1)), lines  # SIGPIPE is 13


def test_the_child_leads_a_new_session_in_the_current_directory() -> None:
    async def main() -> tuple[int, list[str]]:
        return await output_of(["sh", "-c", "ps -o sid= -p $$; echo $$; pwd"], cwd=os.getcwd())

    status, lines = run(main())
    assert status == 0
    assert lines[0].strip() == lines[1].strip()  # session id == its own pid
    assert lines[2] == os.getcwd()


def test_a_program_that_is_not_there_raises_as_before(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    with pytest.raises(FileNotFoundError):
        run(process.spawn(["no-such-program-here"], env=env))
    not_executable = tmp_path / "plain"
    not_executable.write_text("echo hi\n")
    with pytest.raises(PermissionError):
        run(process.spawn([str(not_executable)]))


def test_stdin_is_dev_null_on_request() -> None:
    status, lines = run(output_of(["sh", "-c", "readlink /proc/self/fd/0"], stdin_devnull=True))
    assert (status, lines) == (0, ["/dev/null"])


def test_environment_strings_are_encoded_once() -> None:
    process._encoded_strings.clear()
    env = {"A": "1", "B": "two"}
    first = process._encoded(env)
    assert first == {b"A": b"1", b"B": b"two"}
    cached = process._encoded_strings["two"]
    assert process._encoded({"C": "two"})[b"C"] is cached


def test_reaper_registrations_in_a_loop_are_batched_and_cancel_out() -> None:
    reaper.ensure_started()
    reaper._flush()

    async def main() -> None:
        reaper.track(999_991)
        reaper.untrack(999_991)  # started and ended within the window: never sent
        assert reaper._pending == {}
        reaper.track(999_992)
        assert reaper._pending == {999_992: True}
        deadline = asyncio.get_running_loop().time() + 5
        while reaper._pending:
            assert asyncio.get_running_loop().time() < deadline, "the batch was never written"
            await asyncio.sleep(reaper.BATCH_SECONDS)
        reaper.untrack(999_992)

    run(main())
    reaper._flush()  # the loop is gone: what it left is written now
    assert reaper._pending == {}


def test_reaper_registrations_outside_a_loop_are_written_at_once() -> None:
    reaper.ensure_started()
    reaper.track(999_993)
    assert reaper._pending == {}
    reaper.untrack(999_993)
    assert reaper._pending == {}


def epoll_sets() -> int:
    """How many epoll descriptors this process holds (the loop's own is one of them)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventpoll]"
    return count


def test_a_run_keeps_the_childrens_epoll_set_between_children_and_closes_it_after() -> None:
    async def main() -> tuple[int, list[int], int, int]:
        alone = epoll_sets()  # the loop's own
        during = []
        with process.keep_watching():
            for _ in range(3):
                status, lines = await output_of(["sh", "-c", "echo out; echo err >&2"])
                assert (status, sorted(lines)) == (0, ["err", "out"])
                during.append(epoll_sets())
        after_run = epoll_sets()
        status, _ = await output_of(["true"])  # outside a run: closed as the child ends
        assert status == 0
        return alone, during, after_run, epoll_sets()

    alone, during, after_run, after_child = run(main())
    assert during == [alone + 1] * 3
    assert after_run == alone
    assert after_child == alone


def test_consecutive_environments_are_encoded_exactly_in_order() -> None:
    # Only what differs from the last environment is encoded again; the result must still
    # be exactly the environment given, names in its order, the mark on top.
    first = {"A": "1", "TASK": "one", "Z": "26"}
    assert list(process._encoded(first).items()) == [(b"A", b"1"), (b"TASK", b"one"), (b"Z", b"26")]
    second = {"A": "1", "TASK": "two", "Z": "26"}
    assert list(process._encoded(second, {"MARK": "m"}).items()) == [
        (b"A", b"1"),
        (b"TASK", b"two"),
        (b"Z", b"26"),
        (b"MARK", b"m"),
    ]
    assert process._encoded(second) == {b"A": b"1", b"TASK": b"two", b"Z": b"26"}  # no mark kept
    reordered = {"Z": "26", "A": "1", "TASK": "two"}
    assert list(process._encoded(reordered)) == [b"Z", b"A", b"TASK"]
    fewer = {"Z": "26", "A": "1"}
    assert process._encoded(fewer) == {b"Z": b"26", b"A": b"1"}
    overridden = {"Z": "26", "A": "1", "MARK": "old"}
    assert process._encoded(overridden, {"MARK": "m"})[b"MARK"] == b"m"
    assert process._encoded(overridden)[b"MARK"] == b"old"
