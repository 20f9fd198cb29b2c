"""One instance of a service: start it with its sockets or port, wait until it is ready,
watch for its exit, stop it gracefully (stop_signal, then the whole group is killed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pitstop.engine import process
from pitstop.supervisor import sockets
from pitstop.supervisor.notify import NotifySocket
from pitstop.supervisor.readiness import LogWatcher, ReadyContext, wait_ready
from pitstop.taskfile.service import ReadyLog, ReadyNotify, ServiceSpec

log = logging.getLogger(__name__)

OutputSink = Callable[[int, process.Stream, str], None]


@dataclass(frozen=True)
class InstanceCommand:
    """How to start the service: argv, working directory, and the full environment (None
    means pitstop's own)."""

    argv: tuple[str, ...]
    cwd: Path | str | None = None
    env: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Binding:
    """What the frontend gives one instance: inherited sockets, or a private host and port."""

    fds: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    host: str | None = None
    port: int | None = None


class NotReady(Exception):
    """The instance did not become ready; `reason` says why, for people."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(eq=False)  # identity: instances live in sets
class Instance:
    number: int
    command: InstanceCommand
    spec: ServiceSpec
    binding: Binding
    runtime_dir: Path
    on_output: OutputSink
    on_status: Callable[[int, str], None] | None = None
    child: process.Child | None = None
    exited: asyncio.Task[int] | None = None
    stopping: bool = False
    _notify: NotifySocket | None = None
    _log_watcher: LogWatcher | None = None
    _env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    @property
    def running(self) -> bool:
        return self.exited is not None and not self.exited.done()

    def environment(self) -> dict[str, str]:
        base = self.command.env if self.command.env is not None else os.environ
        env = sockets.strip_inherited(base)
        env.update(self.spec.env)
        env["PITSTOP_INSTANCE"] = str(self.number)
        if self.binding.fds:
            env.update(sockets.listen_env(len(self.binding.fds), self.binding.names))
        if self.binding.port is not None:
            env["PORT"] = str(self.binding.port)
            env["HOST"] = self.binding.host or "127.0.0.1"
        if self._notify is not None:
            env["NOTIFY_SOCKET"] = self._notify.path
        return env

    async def start(self) -> None:
        """Start the process; raises NotReady if it cannot be started at all."""
        if isinstance(self.spec.ready, ReadyNotify):
            self._notify = NotifySocket(
                str(self.runtime_dir / f"notify-{self.number}-{id(self)}.sock"),
                on_status=self._status,
            )
        if isinstance(self.spec.ready, ReadyLog):
            self._log_watcher = LogWatcher(self.spec.ready.pattern)
        self._env = self.environment()
        argv = list(self.command.argv)
        if self.binding.fds:
            # The shim would report a missing program only as an early exit with status 127,
            # which the default readiness (ready once running) would take for a crash.
            missing = _not_executable(argv[0], self.command.cwd, self._env)
            if missing is not None:
                self._close_notify()
                raise NotReady(f"cannot start {argv[0]}: {missing}")
            argv = sockets.shim_argv(argv, self.binding.fds)
        try:
            self.child = await process.spawn(
                argv,
                cwd=self.command.cwd,
                env=self._env,
                on_line=self._line,
                pass_fds=self.binding.fds,
                stdin_devnull=True,
            )
        except OSError as exc:
            self._close_notify()
            raise NotReady(f"cannot start {self.command.argv[0]}: {exc.strerror or exc}") from None
        self.exited = asyncio.create_task(self.child.wait(), name=f"instance-{self.number}-exit")
        log.debug("instance #%d started as pid %d", self.number, self.child.pid)

    def _line(self, stream: process.Stream, line: str) -> None:
        if self._log_watcher is not None:
            self._log_watcher.feed(line)
        self.on_output(self.number, stream, line)

    def _status(self, text: str) -> None:
        if self.on_status is not None:
            self.on_status(self.number, text)

    async def wait_ready(self) -> None:
        """Return when ready; raise NotReady if it exits first or the timeout passes."""
        assert self.exited is not None, "wait_ready before start"
        ctx = ReadyContext(
            notify=self._notify,
            log_watcher=self._log_watcher,
            host=self.binding.host,
            port=self.binding.port,
            cwd=self.command.cwd,
            # A ready command sees what the instance sees (PORT/HOST in proxy mode), plus the
            # instance's pid: in socket mode the public address still reaches the serving
            # instance until the swap, so a check must look at something of the new one's.
            env={**self._env, "PITSTOP_INSTANCE_PID": str(self.pid)},
        )
        ready = asyncio.create_task(wait_ready(self.spec.ready, ctx))
        try:
            done, _ = await asyncio.wait(
                {ready, self.exited},
                timeout=self.spec.ready_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if not ready.done():
                ready.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ready
        if self.exited in done:
            status = self.exited.result()
            raise NotReady(f"exited with status {status} before it was ready", status)
        if ready not in done:
            reason = f"not ready after {self.spec.ready_timeout:g}s"
            if self.binding.port is not None:
                # Proxy mode's usual first mistake: an app that binds its own default port
                # (http.server's 8000, Flask's 5000) instead of the one it was given.
                host = self.binding.host or "127.0.0.1"
                reason += f" (it gets HOST={host} PORT={self.binding.port}: does it listen there?)"
            raise NotReady(reason)
        ready.result()
        self._close_notify()

    async def stop(self, sig: int | None = None, timeout: float | None = None) -> int | None:
        """Stop gracefully (stop_signal, stop_timeout, then kill the group); the exit status."""
        self.stopping = True
        self._close_notify()
        if self.child is None:
            return None
        status = await self.child.terminate(
            self.spec.stop_signal if sig is None else sig,
            self.spec.stop_timeout if timeout is None else timeout,
        )
        if self.exited is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.exited
        return status

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None


def _not_executable(program: str, cwd: Path | str | None, env: Mapping[str, str]) -> str | None:
    """Why `program` cannot be executed (as execvp would look for it), or None if it can."""
    if "/" in program:
        path = Path(cwd or ".") / program
        if not path.exists():
            return "No such file or directory"
        return None if os.access(path, os.X_OK) and path.is_file() else "Permission denied"
    search = env.get("PATH", os.defpath)
    with_cwd = [str(Path(cwd or ".") / d) for d in search.split(os.pathsep)]
    if shutil.which(program, path=os.pathsep.join(with_cwd)) is None:
        return "command not found"
    return None
