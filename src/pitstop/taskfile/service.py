"""The `service` table of a task: what to listen on, how to tell an instance is ready, how to
stop it, when to restart it. Pure parsing, no I/O: it runs when the task file loads, with
every other key. Each mistake is reported at its own key, and says what to write instead."""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pitstop.durations import parse_duration
from pitstop.errors import Location, TaskFileError
from pitstop.signals import signal_by_name
from pitstop.taskfile.addresses import AddressError, ListenAddress, parse_listen
from pitstop.taskfile.health import HEALTH_KEYS, HealthSpec, read_health
from pitstop.taskfile.locate import KeyPath
from pitstop.taskfile.messages import dotted, type_name

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

# --------------------------------------------------------------------------- kept builds


@dataclass(frozen=True)
class Artifact:
    """One `artifacts` entry: a path or glob relative to the task's folder, and where it is
    written (a glob that matches nothing after a build is reported there)."""

    pattern: str
    location: Location


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
    # Proxy mode's limits against slow, idle and numerous clients (see proxy/limits.py).
    head_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 60.0
    connect_timeout: float = 5.0
    response_timeout: float = 60.0
    max_connections: int = 1000
    # Checks and kept builds (issue 11, items 4-5): commands that must pass against a ready
    # candidate before it takes traffic, and the build outputs kept per version.
    check: tuple[str, ...] = ()
    check_timeout: float = 60.0
    artifacts: tuple[Artifact, ...] = ()
    keep_builds: int = 3
    # Resource sampling, limits and regression warnings (taskfile/health.py).
    health: HealthSpec = field(default_factory=HealthSpec)

    @property
    def uses_proxy(self) -> bool:
        return self.proxy is not None

    @property
    def public_addresses(self) -> str:
        """The addresses clients use, for messages: "127.0.0.1:8080" or "a, b"."""
        return ", ".join(str(a) for a in (self.listen or (self.proxy,)) if a is not None)


KNOWN_KEYS = (
    "listen",
    "listen_names",
    "proxy",
    "mode",
    "ready",
    "ready_timeout",
    "stop_signal",
    "stop_timeout",
    "drain_timeout",
    "drain_delay",
    "restart",
    "restart_backoff",
    "restart_backoff_max",
    "max_crashes",
    "crash_window",
    "env",
    "head_timeout",
    "body_timeout",
    "keepalive_timeout",
    "connect_timeout",
    "response_timeout",
    "max_connections",
    "check",
    "check_timeout",
    "artifacts",
    "keep_builds",
    *HEALTH_KEYS,
)
_READY_HINT = (
    'write ready = { notify = true }, { log = "listening" }, '
    '{ command = "curl -fs http://127.0.0.1:8080/health" } or { delay = "500ms" }'
)


class Fail(Protocol):
    """Makes the error for a key of the service table (`key_path` is relative to the table,
    () for the table itself); `what` continues a sentence that starts with the key."""

    def __call__(self, key_path: KeyPath, what: str, hint: str | None = None, /) -> Exception: ...


def parse_service(raw: object, where: Location) -> ServiceSpec:
    """A `service` table given as a value (library use): every error points at `where`.
    Task files go through `read_service`, which points at each key. Raises TaskFileError."""

    def fail(key_path: KeyPath, what: str, hint: str | None = None) -> TaskFileError:
        return TaskFileError(f"{dotted(('service', *key_path))} {what}", where, hint)

    return read_service(raw, where, fail)


def read_service(raw: object, where: Location, fail: Fail) -> ServiceSpec:
    """Validate a task's `service` value, declared at `where`; raises what `fail` makes."""
    if not isinstance(raw, dict):
        raise fail(
            (),
            f'must be a table, e.g. service = {{ listen = "127.0.0.1:8080" }} '
            f"(found {type_name(raw)})",
        )
    return _Parser(raw, fail).spec(where)


def _found(value: object) -> str:
    """A value as a message quotes it: scalars as written, anything else by its type."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return repr(value)
    return type_name(value)


class _Parser:
    def __init__(self, raw: Mapping[str, Any], fail: Fail) -> None:
        self.raw = raw
        self.fail = fail

    def spec(self, where: Location) -> ServiceSpec:
        self.unknown_keys()
        listen = self.listen()
        proxy = self.proxy()
        if proxy is None and not listen:
            raise self.fail(
                (),
                "needs 'listen' (pitstop passes the socket to the service) "
                "or 'proxy' (pitstop forwards to the service's $PORT)",
                'write listen = "127.0.0.1:8080" or proxy = "127.0.0.1:8080"',
            )
        if proxy is not None and listen:
            raise self.fail(
                ("proxy",),
                "cannot be used together with 'listen'",
                "keep 'listen' if the service accepts a socket as fd 3 (LISTEN_FDS), "
                "'proxy' if it can only bind $PORT itself",
            )
        backoff = self.duration("restart_backoff", 0.5)
        return ServiceSpec(
            location=where,
            listen=listen,
            listen_names=self.listen_names(listen),
            ready=self.ready(proxied=proxy is not None),
            ready_timeout=self.duration("ready_timeout", 30.0),
            stop_signal=self.signal(),
            stop_timeout=self.duration("stop_timeout", 10.0),
            restart=self.restart(),
            restart_backoff=backoff,
            restart_backoff_max=max(backoff, self.duration("restart_backoff_max", 10.0)),
            max_crashes=self.positive_int("max_crashes", 5),
            crash_window=self.duration("crash_window", 30.0),
            proxy=proxy,
            mode=self.mode(proxied=proxy is not None),
            drain_timeout=self.duration("drain_timeout", 10.0),
            drain_delay=self.duration("drain_delay", 0.1),
            env=self.env(),
            head_timeout=self.duration("head_timeout", 10.0),
            body_timeout=self.duration("body_timeout", 30.0),
            keepalive_timeout=self.duration("keepalive_timeout", 60.0),
            connect_timeout=self.duration("connect_timeout", 5.0),
            response_timeout=self.duration("response_timeout", 60.0),
            max_connections=self.positive_int("max_connections", 1000),
            check=self.check(),
            check_timeout=self.duration("check_timeout", 60.0),
            artifacts=self.artifacts(where),
            keep_builds=self.positive_int("keep_builds", 3),
            health=read_health(self.raw, self.fail),
        )

    def unknown_keys(self) -> None:
        # An error, not a warning as for cargo-make's keys: the table is pitstop's own, so no
        # other tool reads the key, and a misspelt `ready_timout` would silently do nothing.
        for key in self.raw:
            if key not in KNOWN_KEYS:
                import difflib  # only on this error path

                close = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"the service keys are {', '.join(KNOWN_KEYS)}"
                )
                raise self.fail((key,), "is not a service key", hint)

    # ------------------------------------------------------------------ addresses

    def listen(self) -> tuple[ListenAddress, ...]:
        value = self.raw.get("listen")
        if value is None:
            return ()
        if not isinstance(value, list):
            return (self.address(value, ("listen",)),)
        if not value:
            raise self.fail(("listen",), "is empty", 'write listen = ["127.0.0.1:8080"]')
        return tuple(self.address(item, ("listen", i)) for i, item in enumerate(value))

    def address(self, value: object, key_path: KeyPath) -> ListenAddress:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.fail(
                key_path,
                f'must be an address such as "127.0.0.1:8080" (found {type_name(value)})',
                'write "127.0.0.1:8080", "[::1]:8080", "8080" or "unix:/tmp/app.sock"',
            )
        try:
            return parse_listen(value)
        except AddressError as exc:
            raise self.fail(
                key_path, f"is not an address: {exc.reason} (found {value!r})"
            ) from None

    def listen_names(self, addresses: tuple[ListenAddress, ...]) -> tuple[str, ...]:
        value = self.raw.get("listen_names")
        if value is None:
            return tuple(a.default_name for a in addresses)
        hint = "write listen_names = [\"http\"], one name per 'listen' entry"
        if not isinstance(value, list) or len(value) != len(addresses):
            raise self.fail(
                ("listen_names",),
                f"must be a list of {len(addresses)} name(s), one per 'listen' entry "
                f"(found {_found(value) if not isinstance(value, list) else len(value)})",
                hint,
            )
        for i, name in enumerate(value):
            if not isinstance(name, str) or not name or ":" in name:
                raise self.fail(
                    ("listen_names", i),
                    f"must be a name without ':' (found {_found(name)})",
                    hint,
                )
        return tuple(value)

    def proxy(self) -> ListenAddress | None:
        value = self.raw.get("proxy")
        return None if value is None else self.address(value, ("proxy",))

    def mode(self, *, proxied: bool) -> ProxyMode:
        value = self.raw.get("mode", "http")
        if value not in ("http", "tcp"):
            raise self.fail(("mode",), f'must be "http" or "tcp" (found {_found(value)})')
        if "mode" in self.raw and not proxied:
            raise self.fail(("mode",), "only applies with 'proxy'", 'add proxy = "127.0.0.1:8080"')
        return "http" if value == "http" else "tcp"

    # ------------------------------------------------------------------ readiness

    def ready(self, *, proxied: bool) -> ReadyCheck:
        value = self.raw.get("ready")
        if value is None:
            # Without a check, a proxied instance is ready when its port accepts; a socket
            # instance as soon as it runs (connections wait in its socket's queue meanwhile).
            return ReadyTcp() if proxied else ReadyDelay(0.0)
        if not isinstance(value, dict):
            raise self.fail(
                ("ready",),
                f"must be a table with one check (found {type_name(value)})",
                _READY_HINT,
            )
        if len(value) != 1:
            found = ", ".join(value) or "none"
            raise self.fail(("ready",), f"must have exactly one check (found {found})", _READY_HINT)
        ((kind, arg),) = value.items()
        return self.ready_check(kind, arg, ("ready", kind), proxied=proxied)

    def ready_check(
        self, kind: str, arg: object, key_path: KeyPath, *, proxied: bool
    ) -> ReadyCheck:
        if kind == "notify":
            if arg is not True:
                raise self.wrong_check(key_path, "true", arg)
            return ReadyNotify()
        if kind == "log":
            if not isinstance(arg, str) or not arg:
                raise self.wrong_check(
                    key_path, 'a regular expression, e.g. log = "listening"', arg
                )
            try:
                return ReadyLog(re.compile(arg))
            except re.error as exc:
                raise self.fail(key_path, f"is not a valid regular expression: {exc}") from None
        if kind == "command":
            if isinstance(arg, str) and arg.strip():
                return ReadyCommand(arg)
            raise self.wrong_check(key_path, 'a shell command, e.g. command = "curl -fs ..."', arg)
        if kind == "delay":
            return ReadyDelay(self.parse_duration(arg, key_path))
        if kind not in ("http", "tcp"):
            raise self.fail(key_path, "is not a ready check", _READY_HINT)
        if not proxied:
            raise self.fail(
                key_path,
                "needs proxy mode: with 'listen' a probe of the address "
                "is answered by the serving instance, not the new one",
                'use ready = { notify = true } or { log = "..." }, or set proxy = "..."',
            )
        if kind == "http":
            if isinstance(arg, str) and arg.startswith("/"):
                return ReadyHttp(arg)
            raise self.wrong_check(key_path, 'a path, e.g. http = "/health"', arg)
        if arg is not True:
            raise self.wrong_check(key_path, "true", arg)
        return ReadyTcp()

    def wrong_check(self, key_path: KeyPath, expected: str, value: object) -> Exception:
        return self.fail(key_path, f"must be {expected} (found {_found(value)})", _READY_HINT)

    # ------------------------------------------------------------------ scalars

    def duration(self, key: str, default: float) -> float:
        return self.parse_duration(self.raw[key], (key,)) if key in self.raw else default

    def parse_duration(self, value: object, key_path: KeyPath) -> float:
        try:
            return parse_duration(value)
        except ValueError:
            raise self.fail(
                key_path,
                f'must be a duration such as "500ms", "30s" or "1m30s" (found {_found(value)})',
                f'write {key_path[-1]} = "10s" (a plain number is seconds)',
            ) from None

    def signal(self) -> signal.Signals:
        value = self.raw.get("stop_signal", "SIGTERM")
        expected = 'must be a signal name such as "SIGTERM", "SIGINT" or "SIGQUIT"'
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(("stop_signal",), f"{expected} (found {type_name(value)})")
        try:
            return signal_by_name(value)
        except ValueError:
            raise self.fail(("stop_signal",), f"{expected} (found {value!r})") from None

    def restart(self) -> RestartPolicy:
        value = self.raw.get("restart", "on-failure")
        if value == "on-failure":
            return "on-failure"
        if value == "always":
            return "always"
        if value == "never":
            return "never"
        raise self.fail(
            ("restart",), f'must be "on-failure", "always" or "never" (found {_found(value)})'
        )

    def positive_int(self, key: str, default: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail((key,), f"must be a whole number of at least 1 (found {_found(value)})")
        return value

    def env(self) -> tuple[tuple[str, str], ...]:
        value = self.raw.get("env", {})
        if not isinstance(value, dict):
            raise self.fail(
                ("env",),
                f'must be a table, e.g. env = {{ RUST_LOG = "debug" }} (found {type_name(value)})',
            )
        pairs = []
        for key, item in value.items():
            if isinstance(item, bool):
                item = "true" if item else "false"
            if not isinstance(item, str | int | float):
                raise self.fail(
                    ("env", key), f'must be a string, e.g. {key} = "..." (found {type_name(item)})'
                )
            pairs.append((str(key), str(item)))
        return tuple(pairs)

    # ------------------------------------------------------------------ checks, kept builds

    def check(self) -> tuple[str, ...]:
        value = self.raw.get("check", [])
        hint = 'write check = ["pytest -q tests/smoke", "curl -fsS $PITSTOP_CANDIDATE_URL/health"]'
        if not isinstance(value, list):
            raise self.fail(
                ("check",), f"must be a list of shell commands (found {_found(value)})", hint
            )
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(
                    ("check", i), f"must be a shell command (found {_found(item)})", hint
                )
        return tuple(value)

    def artifacts(self, where: Location) -> tuple[Artifact, ...]:
        value = self.raw.get("artifacts", [])
        hint = 'write artifacts = ["target/debug/app"] (paths or globs in the task\'s folder)'
        if not isinstance(value, list):
            raise self.fail(
                ("artifacts",), f"must be a list of paths or globs (found {_found(value)})", hint
            )
        kept = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(
                    ("artifacts", i), f"must be a path or glob (found {_found(item)})", hint
                )
            if item.startswith("/") or ".." in item.replace("\\", "/").split("/"):
                raise self.fail(
                    ("artifacts", i),
                    f"must stay inside the task's folder (found {item!r})",
                    hint,
                )
            # The error `fail` makes carries the entry's own line:col; kept for the build.
            located = self.fail(("artifacts", i), "")
            location = getattr(located, "location", None)
            kept.append(Artifact(item, location if isinstance(location, Location) else where))
        return tuple(kept)
