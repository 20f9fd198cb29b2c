"""The built-in base tasks (cargo-make's `base.toml`), always loaded under the user file.

They are kept as TOML text and go through the same validator as a user file, so they are
ordinary tasks: a user `[tasks.default]` overrides their attributes like any file merge.
cargo-make's Rust "core" task set is deliberately not provided.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

from pitstop.taskfile.locate import locate
from pitstop.taskfile.model import Taskfile
from pitstop.taskfile.validate import validate

BASE_PATH = Path("<built-in base.toml>")

BASE_TOML = """\
[config]
init_task = "init"
end_task = "end"

[tasks.init]
description = "By default this task is invoked at the start of every cargo-make run."
category = "Hooks"

[tasks.end]
description = "By default this task is invoked at the end of every cargo-make run."
category = "Hooks"

[tasks.empty]
description = "Empty Task"
category = "Tools"

[tasks.default]
description = "Empty Task"
"""


@cache
def base_taskfile() -> Taskfile:
    """The base tasks as a Taskfile (validated once; Taskfile is immutable in practice)."""
    return validate(tomllib.loads(BASE_TOML), locate(BASE_TOML, BASE_PATH))
