"""`pitstop --watch -- COMMAND ARGS...`: watch the current folder and rerun a command, with no
task file (as watchexec does).

The command becomes a one-task file in memory, so the run, the watch loop, the filters
(.gitignore, editor temp files) and the printer are the ones every task file gets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pitstop.records import replace
from pitstop.taskfile.loader import parse_toml
from pitstop.taskfile.locate import locate
from pitstop.taskfile.model import Taskfile
from pitstop.taskfile.validate import validate

# Where messages about the in-memory file point: no file by this name exists.
ADHOC_FILE = "(pitstop --watch --)"


def adhoc_taskfile(argv: Sequence[str], cwd: Path) -> tuple[Taskfile, str]:
    """A task file whose only task runs `argv` (no shell), and that task's name."""
    name = Path(argv[0]).name or "command"
    text = (
        f"[tasks.{_toml_string(name)}]\n"
        f"command = {_toml_string(_literal(argv[0]))}\n"
        f"args = [{', '.join(_toml_string(_literal(arg)) for arg in argv[1:])}]\n"
    )
    path = cwd / ADHOC_FILE
    taskfile = validate(parse_toml(text, path), locate(text, path))
    # No init and end tasks: there is no file to define them.
    config = replace(taskfile.config, init_task=None, end_task=None)
    return replace(taskfile, config=config, in_memory=True), name


def _toml_string(text: str) -> str:
    # A JSON string without \u escapes of non-ASCII text is a valid TOML basic string.
    return json.dumps(text, ensure_ascii=False)


# The command runs exactly as typed, as watchexec runs it: a task's `${NAME}` would be expanded
# (cargo-make has no escape), so each `${` is written as a reference to an unset variable whose
# default is `$`, followed by `{` (expansion is one pass: the default is not scanned again).
_LITERAL_DOLLAR_BRACE = "${_PITSTOP_LITERAL_:$}{"


def _literal(text: str) -> str:
    return text.replace("${", _LITERAL_DOLLAR_BRACE)
