"""cargo-make's built-in tasks: the base tasks (always) and the Rust "core" set (optional).

`base.toml`'s four tasks and init/end config are loaded under every task file, as in
cargo-make. The core set — the tasks that run cargo and rustup, with their hooks, flows and
[env] — ships as `builtin_tasks/rust.toml` and is loaded under a Makefile.toml unless it sets
`[config] skip_core_tasks = true` (SEMANTICS §2.1, §12). Both go through the same validator
as a user file, so they are ordinary tasks that a user definition extends attribute by
attribute.

Parsing the core file costs more than the rest of `pitstop --list`, so the validated result
is cached on disk, keyed on the bytes of that file and of the code that reads it (in the
folder of `taskfile.cache`, and off with it under PITSTOP_NO_CACHE).
"""

from __future__ import annotations

import contextlib
import sys
import tomllib
from functools import cache
from pathlib import Path

from pitstop.records import replace
from pitstop.taskfile.cache import cache_dir, enabled, read_pickle, write_pickles
from pitstop.taskfile.locate import locate
from pitstop.taskfile.model import ModifyCoreTasks, Task, Taskfile
from pitstop.taskfile.validate import validate

BASE_PATH = Path("<built-in base.toml>")
CORE_PATH = Path(__file__).with_name("builtin_tasks") / "rust.toml"

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

_DUCKSCRIPT = "it runs a duckscript script, cargo-make's own script language"
_WORKSPACE = "it runs a task in every member of a Cargo workspace, which pitstop does not emulate"

# cargo-make's built-in tasks that pitstop leaves out of builtin_tasks/rust.toml, and why.
NOT_PROVIDED: dict[str, str] = {
    **dict.fromkeys(
        (
            "setup-sudo-env",
            "legacy-migration",
            "build-file-increment",
            "github-hub-find",
            "do-clean-apidocs",
            "readme-set-crate-version-conditioned",
            "do-copy-apidocs",
            "zip-release-binary-for-target",
            "setup-release-build-env-print",
        ),
        _DUCKSCRIPT,
    ),
    **dict.fromkeys(
        (
            "workspace-ci-flow",
            "workspace-members-ci",
            "do-on-members",
            "workspace-coverage",
            "workspace-members-coverage",
            "workspace-build-flow",
            "workspace-member-build-flow",
            "workspace-publish-flow",
            "workspace-build-publish-flow",
            "workspace-clean-apidocs",
            "workspace-copy-apidocs",
        ),
        _WORKSPACE,
    ),
}


@cache
def base_taskfile() -> Taskfile:
    """The base tasks as a Taskfile (validated once; Taskfile is immutable in practice)."""
    return validate(tomllib.loads(BASE_TOML), locate(BASE_TOML, BASE_PATH))


@cache
def core_taskfile() -> Taskfile:
    """The Rust core tasks, validated (their warnings dropped: they are not the user's)."""
    data = CORE_PATH.read_bytes()
    key = _cache_key(data)
    cached = _read_cache(key)
    if cached is not None:
        return cached
    text = data.decode("utf-8")
    taskfile = validate(tomllib.loads(text), locate(text, CORE_PATH))
    taskfile = Taskfile(
        path=taskfile.path,
        tasks=taskfile.tasks,
        env=taskfile.env,
        env_files=taskfile.env_files,
        env_scripts=taskfile.env_scripts,
        config=taskfile.config,
    )
    _write_cache(key, taskfile)
    return taskfile


def modify_core(core: Taskfile, modify: ModifyCoreTasks) -> Taskfile:
    """cargo-make's `modify_core_tasks`: every core task private, and/or renamed `ns::name`
    together with every reference to it (alias, extend, run_task, dependencies)."""
    prefix = f"{modify.namespace}::" if modify.namespace else ""
    tasks = {}
    for name, task in core.tasks.items():
        changes: dict[str, object] = {"name": prefix + name} if prefix else {}
        if modify.private:
            changes["private"] = True
        if prefix:
            changes.update(_namespaced_references(task, prefix))
        tasks[prefix + name] = task.replace(**changes) if changes else task
    return replace(core, tasks=tasks)


def _namespaced_references(task: Task, prefix: str) -> dict[str, object]:
    changes: dict[str, object] = {}
    for key in ("extend", "alias", "linux_alias", "mac_alias", "windows_alias"):
        value = getattr(task, key)
        if value is not None:
            changes[key] = prefix + value
    if task.dependencies is not None:
        changes["dependencies"] = tuple(
            dep if dep.path is not None else replace(dep, name=prefix + dep.name)
            for dep in task.dependencies
        )
    if task.run_task is not None:
        changes["run_task"] = tuple(
            replace(spec, names=tuple(prefix + n for n in spec.names)) for spec in task.run_task
        )
    for platform in ("linux", "mac", "windows"):
        override = getattr(task, platform)
        if override is not None:
            changes[platform] = override.replace(**_namespaced_references(override, prefix))
    return changes


# --------------------------------------------------------------------------- disk cache


def _cache_key(data: bytes) -> str:
    """The core file's bytes, the code that turns them into objects, and the Python version.

    CRC-32 over each part, not sha256: it only has to notice a change, and `import hashlib`
    (OpenSSL) alone would cost more than reading the cache.
    """
    import zlib

    # The path too: the cached tasks' locations name it, and a reinstall may move it.
    parts = [data, sys.version.encode(), str(CORE_PATH).encode()]
    here = Path(__file__).parent
    # records.py: how the model's objects are built and pickled.
    for path in (
        here / "model.py",
        here / "validate.py",
        here / "locate.py",
        here.parent / "records.py",
    ):
        try:
            parts.append(path.read_bytes())
        except OSError:
            parts.append(path.name.encode())
    return "-".join(f"{len(part):x}.{zlib.crc32(part):08x}" for part in parts)


def _read_cache(key: str) -> Taskfile | None:
    if not enabled():
        return None
    value = read_pickle(cache_dir() / f"core-tasks-{key}.pickle")
    return value if isinstance(value, Taskfile) else None


def _write_cache(key: str, taskfile: Taskfile) -> None:
    """Write atomically (`taskfile.cache`'s writer); an unwritable cache is skipped."""
    if not enabled():
        return
    path = cache_dir() / f"core-tasks-{key}.pickle"
    if not write_pickles(path, taskfile):
        return
    with contextlib.suppress(OSError):
        for old in path.parent.glob("core-tasks-*.pickle"):  # caches of other versions
            if old != path:
                old.unlink(missing_ok=True)
