"""process.spawn / Child over real children, on both backends (pidfd and asyncio's fallback).

Every wait is bounded by `run`'s timeout or a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pitstop.engine import process, reaper
from tests.helpers import async_wait_until, pid_alive, wait_until

T = TypeVar("T")
Lines = list[tuple[str, str]]


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(params=["pidfd", "asyncio"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "pidfd":
        if not process._pidfds_work():
            pytest.skip("no pidfd support here")
    else:
        monkeypatch.setattr(process, "_pidfd_support", False)
    yield request.param


def sink() -> tuple[Lines, process.LineSink]:
    lines: Lines = []

    def on_line(stream: process.Stream, line: str) -> None:
        lines.append((stream, line))

    return lines, on_line


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_exit_status_and_lines(backend: str) -> None:
    lines, on_line = sink()

    async def main() -> tuple[int, int | None]:
        child = await process.spawn(
            ["sh", "-c", "echo one; echo two >&2; printf 'crlf\\r\\n'; printf last; exit 3"],
            on_line=on_line,
        )
        assert child.returncode is None or child.returncode == 3
        return await child.wait(), child.returncode

    assert run(main()) == (3, 3)
    assert [line for line in lines if line[0] == "stdout"] == [
        ("stdout", "one"),
        ("stdout", "crlf"),
        ("stdout", "last"),
    ]
    assert [line for line in lines if line[0] == "stderr"] == [("stderr", "two")]


def test_output_is_all_delivered_before_wait_returns(backend: str) -> None:
    lines, on_line = sink()

    async def main() -> int:
        child = await process.spawn(
            [sys.executable, "-c", "import sys\nfor i in range(20000): print(i)"],
            on_line=on_line,
        )
        return await child.wait()

    assert run(main()) == 0
    assert [int(line) for _, line in lines] == list(range(20000))


def test_death_by_signal_is_128_plus_n(backend: str) -> None:
    async def main() -> int:
        child = await process.spawn(["sh", "-c", "kill -KILL $$"])
        return await child.wait()

    assert run(main()) == 128 + signal.SIGKILL


def test_child_leads_its_own_session_and_is_marked_for_the_reaper(backend: str) -> None:
    lines, on_line = sink()

    async def main() -> int:
        child = await process.spawn(
            ["sh", "-c", 'echo "$PITSTOP_ANCESTRY"; sleep 30'], on_line=on_line
        )
        await async_wait_until(lambda: lines, message="ancestry line")
        assert os.getsid(child.pid) == child.pid
        assert os.getpgid(child.pid) == child.pid
        return await child.terminate(signal.SIGTERM, timeout=10)

    assert run(main()) == 128 + signal.SIGTERM
    assert reaper.token() in lines[0][1].split(":")


def test_without_on_line_output_goes_to_our_fds(
    backend: str, capfd: pytest.CaptureFixture[str]
) -> None:
    async def main() -> int:
        child = await process.spawn(["sh", "-c", "echo to-stdout; echo to-stderr >&2"])
        return await child.wait()

    assert run(main()) == 0
    out, err = capfd.readouterr()
    assert "to-stdout" in out
    assert "to-stderr" in err


def test_stdin_devnull(backend: str) -> None:
    lines, on_line = sink()

    async def main() -> int:
        child = await process.spawn(
            ["sh", "-c", "cat; echo eof"], on_line=on_line, stdin_devnull=True
        )
        return await child.wait()

    assert run(main()) == 0
    assert lines == [("stdout", "eof")]


PASS_FD_PROGRAM = """
import os, sys
print(os.getcwd())
print(os.environ["GREETING"])
os.write(int(sys.argv[1]), b"passed\\n")
"""


def test_cwd_env_and_pass_fds(backend: str, tmp_path: Path) -> None:
    lines, on_line = sink()
    read_end, write_end = os.pipe()

    async def main() -> int:
        child = await process.spawn(
            [sys.executable, "-c", PASS_FD_PROGRAM, str(write_end)],
            cwd=tmp_path,
            env={"GREETING": "hello"},
            on_line=on_line,
            pass_fds=[write_end],
        )
        return await child.wait()

    try:
        assert run(main()) == 0
        os.close(write_end)
        with os.fdopen(read_end) as passed:
            assert passed.read() == "passed\n"
    finally:
        for fd in (read_end, write_end):
            with contextlib.suppress(OSError):
                os.close(fd)
    assert lines == [("stdout", str(tmp_path.resolve())), ("stdout", "hello")]


@pytest.mark.parametrize("program", ["no-such-program-pitstop", "not-executable"])
def test_program_that_cannot_start(backend: str, tmp_path: Path, program: str) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    expected = FileNotFoundError if program.startswith("no-such") else PermissionError
    path = str(tmp_path / program) if program == "not-executable" else program
    _, on_line = sink()

    async def main() -> None:
        await process.spawn([path], on_line=on_line)

    with pytest.raises(expected):  # starts the reaper before the fds are counted
        run(main())
    before = open_fds()
    with pytest.raises(expected):
        run(main())
    assert open_fds() <= before


def test_no_descriptor_is_left_open(backend: str) -> None:
    _, on_line = sink()

    async def main() -> None:
        for _ in range(3):
            child = await process.spawn(["sh", "-c", "echo x; echo y >&2"], on_line=on_line)
            assert await child.wait() == 0

    run(main())
    before = open_fds()
    run(main())
    assert open_fds() <= before


def test_wait_kills_what_the_leader_left_in_its_group(backend: str) -> None:
    lines, on_line = sink()

    async def main() -> int:
        child = await process.spawn(
            ["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], on_line=on_line
        )
        return await child.wait()

    assert run(main()) == 0
    leftover = int(lines[0][1])
    run(async_wait_until(lambda: not pid_alive(leftover), message="leftover killed"))


def test_terminate_signals_the_group_then_returns_the_status(backend: str) -> None:
    lines, on_line = sink()

    async def main() -> int:
        child = await process.spawn(
            [
                "sh",
                "-c",
                "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 1; done",
            ],
            on_line=on_line,
        )
        await async_wait_until(lambda: ("stdout", "ready") in lines, message="ready")
        return await child.terminate(signal.SIGTERM, timeout=20)

    assert run(main()) == 7
    assert ("stdout", "got-term") in lines


def test_terminate_kills_a_group_that_ignores_the_signal(backend: str) -> None:
    lines, on_line = sink()

    async def main() -> int:
        child = await process.spawn(
            ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"], on_line=on_line
        )
        await async_wait_until(lambda: ("stdout", "ready") in lines, message="ready")
        return await child.terminate(signal.SIGTERM, timeout=0.2)

    assert run(main()) == 128 + signal.SIGKILL


def test_a_cancelled_terminate_still_kills_the_group(backend: str) -> None:
    lines, on_line = sink()

    async def main() -> int:
        # The trap answers SIGTERM with a line and goes on: only SIGKILL ends it.
        child = await process.spawn(
            ["sh", "-c", "trap 'echo got-term' TERM; echo ready; while :; do sleep 1; done"],
            on_line=on_line,
        )
        await async_wait_until(lambda: ("stdout", "ready") in lines, message="ready")
        terminating = asyncio.create_task(child.terminate(signal.SIGTERM, timeout=600))
        await async_wait_until(lambda: ("stdout", "got-term") in lines, message="got-term")
        terminating.cancel()
        with pytest.raises(asyncio.CancelledError):
            await terminating
        return await child.wait()

    assert run(main()) == 128 + signal.SIGKILL


def test_a_cancelled_wait_leaves_the_child_waitable(backend: str) -> None:
    lines, on_line = sink()

    async def main() -> int:
        child = await process.spawn(["sh", "-c", "echo ready; exec sleep 60"], on_line=on_line)
        await async_wait_until(lambda: lines, message="ready")
        waiting = asyncio.create_task(child.wait())
        await asyncio.sleep(0)  # a yield: let the waiter start waiting
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert child.returncode is None
        child.send_signal(signal.SIGTERM)
        return await child.wait()

    assert run(main()) == 128 + signal.SIGTERM


def test_cancelling_one_wait_leaves_the_other_waiting(backend: str) -> None:
    lines, on_line = sink()

    async def main() -> int:
        child = await process.spawn(["sh", "-c", "echo ready; exec sleep 60"], on_line=on_line)
        await async_wait_until(lambda: lines, message="ready")
        first = asyncio.create_task(child.wait())
        second = asyncio.create_task(child.wait())
        await asyncio.sleep(0)  # a yield: let both start waiting
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert not second.done()
        child.send_signal(signal.SIGTERM)
        return await second

    assert run(main()) == 128 + signal.SIGTERM


def test_kill_now(backend: str) -> None:
    async def main() -> int:
        child = await process.spawn(["sleep", "60"])
        child.kill_now()
        return await child.wait()

    assert run(main()) == 128 + signal.SIGKILL


def test_a_failing_line_handler_does_not_stop_the_output(backend: str) -> None:
    seen: list[str] = []

    def on_line(stream: process.Stream, line: str) -> None:
        seen.append(line)
        if line == "boom":
            raise RuntimeError("handler failed")

    async def main() -> int:
        child = await process.spawn(["sh", "-c", "echo boom; echo after"], on_line=on_line)
        return await child.wait()

    assert run(main()) == 0
    assert seen == ["boom", "after"]


def test_long_lines_are_handed_over_in_pieces() -> None:
    if not process._pidfds_work():
        pytest.skip("the pieces are exact only on the pidfd backend")
    lines, on_line = sink()
    # 5 MiB of "é" (2 bytes each) with no newline, then a short line.
    program = "import sys\nsys.stdout.write('\\u00e9' * (5 << 19) + '\\nshort\\n')"

    async def main() -> int:
        child = await process.spawn([sys.executable, "-c", program], on_line=on_line)
        return await child.wait()

    assert run(main()) == 0
    pieces = [line for _, line in lines]
    assert pieces[-1] == "short"
    assert len(pieces) >= 4
    assert all(len(piece.encode()) <= process.LINE_LIMIT for piece in pieces)
    assert "".join(pieces[:-1]) == "\u00e9" * (5 << 19)


def test_exit_status() -> None:
    assert process.exit_status(0) == 0
    assert process.exit_status(2) == 2
    assert process.exit_status(-signal.SIGTERM) == 128 + signal.SIGTERM


# --------------------------------------------------------------------------- capture


def test_capture_gives_stdout_stderr_status_and_takes_stdin(backend: str) -> None:
    script = "cat; printf 'crlf\\r\\nlast'; echo oops >&2; exit 5"
    done = run(process.capture(["sh", "-c", script], stdin=b"given\n"))
    assert done == process.Captured(5, "given\ncrlf\nlast", "oops\n")


def test_capture_leaves_no_descriptor_open(backend: str) -> None:
    async def main() -> None:
        for _ in range(3):
            done = await process.capture(["sh", "-c", "echo x; echo y >&2"], stdin=b"z")
            assert done.status == 0

    run(main())
    before = open_fds()
    run(main())
    assert open_fds() <= before


def test_a_cancelled_capture_ends_the_group(backend: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pid_file}; wait"

    async def main() -> int:
        job = asyncio.create_task(process.capture(["sh", "-c", script]))
        await async_wait_until(lambda: pid_file.is_file() and pid_file.read_text().strip())
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        return int(pid_file.read_text())

    pid = run(main())
    wait_until(lambda: not pid_alive(pid), timeout=5, message="the grandchild outlived capture")


def test_a_cancellation_as_the_child_settles_is_not_lost(backend: str) -> None:
    # asyncio.wait_for on Python 3.11 returned the result and dropped a cancellation that
    # came after its inner wait had finished: terminate() went on as if never cancelled.
    async def main() -> asyncio.Task[int]:
        child = await process.spawn(["sleep", "600"])
        terminating = asyncio.create_task(child.terminate(signal.SIGTERM, timeout=600))
        exited = child._exited

        def exited_then_cancelled(code: int) -> None:
            exited(code)  # wakes the waiter
            terminating.cancel()  # before the woken waiter runs

        child._exited = exited_then_cancelled  # type: ignore[method-assign]
        with contextlib.suppress(asyncio.CancelledError):
            await terminating
        return terminating

    assert run(main()).cancelled()


def test_a_child_whose_start_fails_halfway_is_killed_and_reaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not process._pidfds_work():
        pytest.skip("no pidfd support here")
    started: list[int] = []

    def failing_output(*args: Any) -> None:
        started.append(args[-1].pid)
        raise MemoryError("setting up the output failed")

    monkeypatch.setattr(process, "_Output", failing_output)
    before = open_fds()

    async def main() -> None:
        with pytest.raises(MemoryError):
            await process.spawn(["sleep", "600"], on_line=lambda _s, _l: None)

    try:
        run(main())
        assert started
        assert not os.path.exists(f"/proc/{started[0]}")  # killed and reaped: no zombie either
        assert open_fds() == before
    finally:
        for pid in started:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
