"""Turning a task's `script` into text and an argv (SEMANTICS §8.2).

Three of cargo-make's engines are reproduced:

- **os**: no runner (or a runner without `script_extension`): the trimmed text gets
  `set -e` (and `set -x` when asked) after an optional `#!` line, then `cd "<cwd>"`; it is
  written to a `.sh` file and run as `<runner or sh> <file> <task args>`.
  `script_runner_args` are ignored here, as cargo-make ignores them.
- **generic**: a runner and an extension: the text unchanged, `runner [args] <file> <args>`.
- **shebang**: no runner and a `#!` first line: the text unchanged, run as
  `<interpreter> [shebang args] <file> <args>`.

The internal engines `@duckscript` and `@rust` are cargo-make's own and are refused;
`@shell` is a plain OS script outside Windows.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal

from pitstop.errors import Location, UserError
from pitstop.steps.expand import expand
from pitstop.taskfile.model import Script, ScriptFile, ScriptSections

Engine = Literal["os", "generic", "shebang"]

_UNSUPPORTED_RUNNERS = ("@duckscript", "@rust")
_SHELL_RUNNER = "@shell"
_DEFAULT_SHELL = "sh"
_SHEBANG_EXTENSIONS = {
    "python": "py",
    "perl": "pl",
    "node": "js",
    "powershell": "ps1",
    "pwsh": "ps1",
}


class ScriptError(UserError):
    """A script cannot be prepared: unsupported engine, unreadable script file."""


# --------------------------------------------------------------------------- text


def script_text(
    script: Script, cwd: Path, env: Mapping[str, str], location: Location | None = None
) -> str:
    """The script's text: a string as is, sections joined pre/main/post, or a file's content.

    A `{ file }` path is `${}`-expanded and, unless `absolute_path`, taken relative to
    `CARGO_MAKE_WORKING_DIRECTORY` (falling back to `cwd` when that is not set).
    """
    if isinstance(script, str):
        return script
    if isinstance(script, ScriptSections):
        return "\n".join(s for s in (script.pre, script.main, script.post) if s is not None)
    return _read_script_file(script, cwd, env, location)


def _read_script_file(
    script: ScriptFile, cwd: Path, env: Mapping[str, str], location: Location | None
) -> str:
    raw = script.file
    if not script.absolute_path:
        base = env.get("CARGO_MAKE_WORKING_DIRECTORY") or str(cwd)
        raw = base.rstrip("/") + "/" + raw
    path = Path(expand(raw, env))
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScriptError(
            f"cannot read script file '{path}': {error.strerror or error}", location
        ) from None


# --------------------------------------------------------------------------- engines


@dataclass(frozen=True)
class Shebang:
    interpreter: str
    args: tuple[str, ...]


def parse_shebang(text: str) -> Shebang | None:
    """The `#!interpreter args` of the first line (leading blanks ignored), if any."""
    stripped = text.lstrip()
    if not stripped.startswith("#!"):
        return None
    words = stripped.splitlines()[0][2:].split()
    if not words:
        return None
    return Shebang(words[0], tuple(words[1:]))


def _refuse(runner: str, location: Location | None) -> ScriptError:
    return ScriptError(
        f"script runner '{runner}' is specific to cargo-make (Rust/duckscript) and is not "
        "supported by pitstop",
        location,
        hint='use script_runner = "bash" (or "sh"), or start the script with a shebang line '
        "such as #!/usr/bin/env python3",
    )


def select_engine(
    text: str, runner: str | None, extension: str | None, location: Location | None = None
) -> Engine:
    """cargo-make's `get_engine_type`, minus the internal engines pitstop refuses."""
    if runner is not None:
        if runner in _UNSUPPORTED_RUNNERS:
            raise _refuse(runner, location)
        if runner == _SHELL_RUNNER:
            return "os"
        return "generic" if extension is not None else "os"
    shebang = parse_shebang(text)
    if shebang is None:
        return "os"
    if not shebang.args and shebang.interpreter in _UNSUPPORTED_RUNNERS:
        raise _refuse(shebang.interpreter, location)
    if not shebang.args and shebang.interpreter == _SHELL_RUNNER:
        return "os"
    return "shebang"


def os_script_body(text: str, cwd: Path, *, print_commands: bool = False) -> str:
    """The OS engine's file content (run_script's `modify_script`)."""
    lines = text.strip().split("\n")
    at = 1 if lines and lines[0].startswith("#!") else 0
    inserted = ["set -e"] + (["set -x"] if print_commands else []) + [f'cd "{cwd}"']
    lines[at:at] = inserted
    return "\n".join([*lines, "\n"])


def guess_extension(shebang: Shebang) -> str:
    """The temp file extension for a shebang interpreter (`sh` when unknown).

    cargo-make looks only at the interpreter's file stem; pitstop also looks through
    `/usr/bin/env NAME` and version suffixes (`python3`), which only changes the temp
    file's extension.
    """
    name = PurePath(shebang.interpreter).stem
    if name == "env":
        name = next((a for a in shebang.args if not a.startswith("-")), name)
    name = PurePath(name).stem.rstrip("0123456789.")
    return _SHEBANG_EXTENSIONS.get(name, "sh")


def _write_temp(content: str, extension: str, tmpdir: Path) -> str:
    fd, name = tempfile.mkstemp(prefix="pitstop-", suffix="." + extension.lstrip("."), dir=tmpdir)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(content)
    os.chmod(name, 0o700)
    return name


def script_invocation(
    text: str,
    *,
    runner: str | None,
    runner_args: Sequence[str] | None,
    extension: str | None,
    cwd: Path,
    task_args: Sequence[str],
    tmpdir: Path,
    print_commands: bool = False,
    location: Location | None = None,
) -> list[str]:
    """Write the script to a temp file in `tmpdir` and return the argv that runs it.

    `runner` and `runner_args` must already be `${}`-expanded. The file stays in `tmpdir`;
    the caller removes `tmpdir` when the run is over. `print_commands` adds `set -x` to OS
    scripts (cargo-make does it at verbose level or in CI).
    """
    engine = select_engine(text, runner, extension, location)
    if engine == "os":
        body = os_script_body(text, cwd, print_commands=print_commands)
        path = _write_temp(body, "sh", tmpdir)
        shell = runner if runner not in (None, _SHELL_RUNNER) else _DEFAULT_SHELL
        return [shell or _DEFAULT_SHELL, path, *task_args]
    if engine == "generic":
        # select_engine guarantees both are set for the generic engine.
        path = _write_temp(text, extension or "", tmpdir)
        return [runner or _DEFAULT_SHELL, *(runner_args or ()), path, *task_args]
    shebang = parse_shebang(text)
    if shebang is None:  # select_engine returned "shebang", so there is one
        raise ScriptError("script has no shebang line", location)
    path = _write_temp(text, extension or guess_extension(shebang), tmpdir)
    return [shebang.interpreter, *shebang.args, path, *task_args]
