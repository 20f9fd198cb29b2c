"""What a task needs installed: cargo-make's `install_crate`, checked but never installed.

cargo-make installs a missing tool (`cargo install`, `rustup component add`) before the
task runs. pitstop does not install anything: it runs the same check and, when the tool is
missing, the task fails with a message naming what to install. The checks start processes
(`cargo --list`, `<binary> --help`, `rustc --version`), so callers run them in a worker
thread; each answer is cached for the life of the process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from functools import cache

from pitstop.taskfile.model import InstallCrate, Task

_TIMEOUT = 60.0


def missing_tool(task: Task, command: Sequence[str] | None) -> str | None:
    """Why `task` cannot run (a sentence naming what to install), or None if it can.

    `command` is the task's expanded command line (None for a script or no action). Follows
    cargo-make's `installer::install`: `install_crate = false` checks nothing, a table with
    a `binary` runs `binary test_arg`, a crate name or a bare `cargo <sub>` command checks
    that `cargo --list` knows the subcommand.
    """
    spec = task.install_crate
    if spec is not None and not spec.enabled:
        return None
    if spec == InstallCrate():  # install_crate = true: the same as not set
        spec = None
    if spec is None:
        sub = _cargo_subcommand(command)
        return _missing_subcommand(sub, f"cargo-{sub}") if sub else None
    if spec.binary is not None:
        return _missing_binary(spec)
    if spec.crate_name is not None and command is not None and len(command) > 1:
        # A crate name alone: the first argument is the cargo subcommand it provides.
        return _missing_subcommand(command[1], spec.crate_name)
    return None


def _cargo_subcommand(command: Sequence[str] | None) -> str | None:
    """`fmt` for `cargo fmt ...` (cargo-make's get_cargo_plugin_info_from_command)."""
    if not command or command[0] != "cargo" or len(command) < 2 or command[1].startswith("-"):
        return None
    return command[1]


def _missing_subcommand(sub: str, crate: str) -> str | None:
    if sub in cargo_subcommands():
        return None
    return (
        f"`cargo {sub}` is not installed: install it with `cargo install {crate}` "
        "(pitstop does not install crates)"
    )


def _missing_binary(spec: InstallCrate) -> str | None:
    assert spec.binary is not None
    if _runs(spec.binary, *spec.test_arg):
        return None
    how = []
    if spec.rustup_component is not None:
        how.append(f"`rustup component add {spec.rustup_component}`")
    if spec.crate_name is not None:
        how.append(f"`cargo install {spec.crate_name}`")
    advice = f"install it with {' or '.join(how)}" if how else "install it"
    return f"`{spec.binary}` is not installed: {advice} (pitstop does not install crates)"


@cache
def _runs(*argv: str) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@cache
def cargo_subcommands() -> frozenset[str]:
    """The subcommands `cargo --list` names (built-in ones, aliases and installed plugins)."""
    try:
        done = subprocess.run(
            ["cargo", "--list"], capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    names = (line.split(maxsplit=1) for line in done.stdout.splitlines()[1:])
    return frozenset(words[0] for words in names if words)


@cache
def rust_channel() -> str | None:
    """stable, beta or nightly, from `rustc --version` (cargo-make's rust_info), or None."""
    try:
        done = subprocess.run(
            ["rustc", "--version"], capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = done.stdout.split()
    if done.returncode != 0 or len(words) < 2:
        return None
    version = words[1]
    if "nightly" in version or "dev" in version:
        return "nightly"
    return "beta" if "beta" in version else "stable"
