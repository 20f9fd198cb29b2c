"""The `service` table of a task: what to listen on, how to tell an instance is ready, how to
stop it, when to restart it. Pure parsing, no I/O; every mistake says what to write instead."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from typing import Literal

from pitstop.durations import parse_duration
from pitstop.engine.process import signal_by_name
from pitstop.errors import Location, TaskFileError
from pitstop.supervisor.sockets import ListenAddress, parse_listen
from pitstop.taskfile.model import Warning_

RestartPolicy = Literal["on-failure", "always", "never"]
ProxyMode = Literal["http", "tcp"]

# --------------------------------------------------------------------------- readiness


@dataclass(frozen=True)
class ReadyNotify:
    """`{ notify = true }`: the instance sends READY=1 to $NOTIFY_SOCKET (sd_notify)."""


@dataclass(frozen=True)
class ReadyLog:
    """`{ log = "regex" }`: a line of the instance's output matches."""

    pattern: re.Pattern[str]


@dataclass(frozen=True)
class ReadyCommand:
    """`{ command = "curl -fs ..." }`: a shell command, repeated until it exits 0."""

    command: str
    interval: float = 0.1


@dataclass(frozen=True)
class ReadyDelay:
    """`{ delay = "500ms" }`: ready once this much time has passed (and it still runs)."""

    seconds: float


@dataclass(frozen=True)
class ReadyHttp:
    """`{ http = "/health" }` (proxy mode): a 2xx answer on the instance's private port."""

    path: str


@dataclass(frozen=True)
class ReadyTcp:
    """`{ tcp = true }` (proxy mode): the instance's private port accepts a connection."""


ReadyCheck = ReadyNotify | ReadyLog | ReadyCommand | ReadyDelay | ReadyHttp | ReadyTcp

# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class ServiceSpec:
    """A parsed `service` table. Exactly one of `listen` (socket hand-off) and `proxy` is set."""

    location: Location
    listen: tuple[ListenAddress, ...] = ()
    listen_names: tuple[str, ...] = ()
    ready: ReadyCheck = ReadyDelay(0.0)
    ready_timeout: float = 30.0
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 10.0
    restart: RestartPolicy = "on-failure"
    restart_backoff: float = 0.5
    restart_backoff_max: float = 10.0
    max_crashes: int = 5
    crash_window: float = 30.0
    proxy: ListenAddress | None = None
    mode: ProxyMode = "http"
    drain_timeout: float = 10.0
    # Socket hand-off: once the old instance's accept queue is empty, how long it keeps
    # running so that it reads the requests of the connections it has just accepted (servers
    # such as uvicorn close accepted-but-unread connections on SIGTERM).
    drain_delay: float = 0.1
    env: tuple[tuple[str, str], ...] = ()
    warnings: tuple[Warning_, ...] = field(default=(), compare=False)
    # Proxy mode's limits against slow, idle and numerous clients (see proxy/limits.py).
    head_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 60.0
    connect_timeout: float = 5.0
    response_timeout: float = 60.0
    max_connections: int = 1000

    @property
    def uses_proxy(self) -> bool:
        return self.proxy is not None


KNOWN_KEYS = frozenset(
    {
        "listen",
        "listen_names",
        "ready",
        "ready_timeout",
        "stop_signal",
        "stop_timeout",
        "restart",
        "restart_backoff",
        "restart_backoff_max",
        "max_crashes",
        "crash_window",
        "proxy",
        "mode",
        "drain_timeout",
        "drain_delay",
        "env",
        "head_timeout",
        "body_timeout",
        "keepalive_timeout",
        "connect_timeout",
        "response_timeout",
        "max_connections",
    }
)


def parse_service(raw: object, where: Location) -> ServiceSpec:
    """Validate a task's `service` value; raises TaskFileError (exit code 2)."""
    return _Parser(where).parse(raw)


class _Parser:
    def __init__(self, where: Location) -> None:
        self.where = where

    def fail(self, message: str, hint: str | None = None) -> TaskFileError:
        return TaskFileError(f"service: {message}", self.where, hint)

    def parse(self, raw: object) -> ServiceSpec:
        if not isinstance(raw, dict):
            raise self.fail(
                "expected a table",
                'write service = { listen = "127.0.0.1:8080", ready = { notify = true } }',
            )
        warnings = tuple(
            Warning_(f"unknown key 'service.{key}' (ignored)", self.where)
            for key in raw
            if key not in KNOWN_KEYS
        )
        listen, names = self.listen(raw)
        proxy = self.proxy(raw)
        if proxy is None and not listen:
            raise self.fail(
                "needs 'listen' (pitstop passes the socket to the service) "
                "or 'proxy' (pitstop forwards to the service's $PORT)",
                'write listen = "127.0.0.1:8080" or proxy = "127.0.0.1:8080"',
            )
        if proxy is not None and listen:
            raise self.fail(
                "'listen' and 'proxy' cannot be used together",
                "use 'listen' if the service accepts a socket as fd 3 (LISTEN_FDS), "
                "'proxy' if it can only bind $PORT itself",
            )
        ready = self.ready(raw.get("ready"), proxy is not None)
        backoff = self.duration(raw, "restart_backoff", 0.5)
        return ServiceSpec(
            location=self.where,
            listen=listen,
            listen_names=names,
            ready=ready,
            ready_timeout=self.duration(raw, "ready_timeout", 30.0),
            stop_signal=self.signal(raw),
            stop_timeout=self.duration(raw, "stop_timeout", 10.0),
            restart=self.restart(raw),
            restart_backoff=backoff,
            restart_backoff_max=max(backoff, self.duration(raw, "restart_backoff_max", 10.0)),
            max_crashes=self.positive_int(raw, "max_crashes", 5),
            crash_window=self.duration(raw, "crash_window", 30.0),
            proxy=proxy,
            mode=self.mode(raw, proxy is not None),
            drain_timeout=self.duration(raw, "drain_timeout", 10.0),
            drain_delay=self.duration(raw, "drain_delay", 0.1),
            env=self.env(raw),
            warnings=warnings,
            head_timeout=self.duration(raw, "head_timeout", 10.0),
            body_timeout=self.duration(raw, "body_timeout", 30.0),
            keepalive_timeout=self.duration(raw, "keepalive_timeout", 60.0),
            connect_timeout=self.duration(raw, "connect_timeout", 5.0),
            response_timeout=self.duration(raw, "response_timeout", 60.0),
            max_connections=self.positive_int(raw, "max_connections", 1000),
        )

    def listen(self, raw: dict[str, object]) -> tuple[tuple[ListenAddress, ...], tuple[str, ...]]:
        value = raw.get("listen")
        if value is None:
            return (), ()
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.fail("'listen' is empty", 'write listen = ["127.0.0.1:8080"]')
        addresses = []
        for item in items:
            if not isinstance(item, str | int) or isinstance(item, bool):
                raise self.fail(
                    f"'listen' entries are addresses, got {item!r}",
                    'write listen = ["127.0.0.1:8080", "unix:/tmp/app.sock"]',
                )
            try:
                addresses.append(parse_listen(item))
            except ValueError as exc:
                raise self.fail(f"listen: {exc}") from None
        names = self.listen_names(raw, addresses)
        return tuple(addresses), names

    def listen_names(
        self, raw: dict[str, object], addresses: list[ListenAddress]
    ) -> tuple[str, ...]:
        value = raw.get("listen_names")
        if value is None:
            return tuple(a.default_name for a in addresses)
        if (
            not isinstance(value, list)
            or len(value) != len(addresses)
            or not all(isinstance(v, str) and v and ":" not in v for v in value)
        ):
            raise self.fail(
                "'listen_names' must be a list of names without ':', one per 'listen' entry",
                'write listen_names = ["http"]',
            )
        return tuple(str(v) for v in value)

    def proxy(self, raw: dict[str, object]) -> ListenAddress | None:
        value = raw.get("proxy")
        if value is None:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.fail("'proxy' is the public address", 'write proxy = "127.0.0.1:8080"')
        try:
            return parse_listen(value)
        except ValueError as exc:
            raise self.fail(f"proxy: {exc}") from None

    def mode(self, raw: dict[str, object], proxied: bool) -> ProxyMode:
        value = raw.get("mode", "http")
        if value not in ("http", "tcp"):
            raise self.fail(f'\'mode\' must be "http" or "tcp", got {value!r}')
        if "mode" in raw and not proxied:
            raise self.fail("'mode' only applies with 'proxy'", 'add proxy = "127.0.0.1:8080"')
        return "http" if value == "http" else "tcp"

    def ready(self, value: object, proxied: bool) -> ReadyCheck:
        if value is None:
            # Without a check, a proxied instance is ready when its port accepts; a socket
            # instance as soon as it runs (connections wait in its socket's queue meanwhile).
            return ReadyTcp() if proxied else ReadyDelay(0.0)
        hint = (
            'write ready = { notify = true }, { log = "listening" }, '
            '{ command = "curl -fs http://127.0.0.1:8080/health" } or { delay = "500ms" }'
        )
        if not isinstance(value, dict) or len(value) != 1:
            raise self.fail("'ready' must be a table with exactly one check", hint)
        ((kind, arg),) = value.items()
        if kind == "notify" and arg is True:
            return ReadyNotify()
        if kind == "log" and isinstance(arg, str) and arg:
            try:
                return ReadyLog(re.compile(arg))
            except re.error as exc:
                raise self.fail(f"ready.log is not a valid regular expression: {exc}") from None
        if kind == "command" and isinstance(arg, str) and arg.strip():
            return ReadyCommand(arg)
        if kind == "delay":
            try:
                return ReadyDelay(parse_duration(arg))
            except ValueError as exc:
                raise self.fail(f"ready.delay: {exc}") from None
        if kind in ("http", "tcp") and not proxied:
            raise self.fail(
                f"ready.{kind} needs proxy mode: with 'listen' a probe of the address "
                "is answered by the serving instance, not the new one",
                'use ready = { notify = true } or { log = "..." }, or set proxy = "..."',
            )
        if kind == "http" and isinstance(arg, str) and arg.startswith("/"):
            return ReadyHttp(arg)
        if kind == "tcp" and arg is True:
            return ReadyTcp()
        raise self.fail(f"unsupported ready check {kind} = {arg!r}", hint)

    def duration(self, raw: dict[str, object], key: str, default: float) -> float:
        if key not in raw:
            return default
        try:
            return parse_duration(raw[key])
        except ValueError as exc:
            raise self.fail(f"{key}: {exc}") from None

    def signal(self, raw: dict[str, object]) -> signal.Signals:
        value = raw.get("stop_signal", "SIGTERM")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail("'stop_signal' must be a signal name", 'write stop_signal = "SIGINT"')
        try:
            return signal_by_name(value)
        except ValueError:
            raise self.fail(
                f"unknown stop_signal {value!r}", 'write "SIGTERM", "SIGINT", "SIGQUIT", ...'
            ) from None

    def restart(self, raw: dict[str, object]) -> RestartPolicy:
        value = raw.get("restart", "on-failure")
        if value == "on-failure":
            return "on-failure"
        if value == "always":
            return "always"
        if value == "never":
            return "never"
        raise self.fail(f'\'restart\' must be "on-failure", "always" or "never", got {value!r}')

    def positive_int(self, raw: dict[str, object], key: str, default: int) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(f"'{key}' must be a whole number of at least 1, got {value!r}")
        return value

    def env(self, raw: dict[str, object]) -> tuple[tuple[str, str], ...]:
        value = raw.get("env", {})
        if not isinstance(value, dict):
            raise self.fail("'env' must be a table", 'write env = { RUST_LOG = "debug" }')
        pairs = []
        for key, item in value.items():
            if isinstance(item, bool):
                item = "true" if item else "false"
            if not isinstance(item, str | int | float):
                raise self.fail(f"env.{key} must be a string, got {item!r}")
            pairs.append((str(key), str(item)))
        return tuple(pairs)
