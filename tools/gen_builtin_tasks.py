"""Regenerate src/pitstop/taskfile/builtin_tasks/rust.toml from a cargo-make checkout.

    python tools/gen_builtin_tasks.py PATH/TO/cargo-make

Takes cargo-make's built-in makefiles (src/lib/descriptor/makefiles/) as they are, leaves
out [config] and the tasks pitstop does not provide (taskfile/builtins.py NOT_PROVIDED), and
turns the duckscript that is a plain echo, sleep or rm into sh.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pitstop.taskfile.builtins import NOT_PROVIDED  # noqa: E402

FILES = ["stable", "rust", "toml", "rust-coverage", "rust-wasm", "deprecated", "git", "github"]
TARGET = ROOT / "src/pitstop/taskfile/builtin_tasks/rust.toml"

# duckscript -> sh, where the duckscript is one plain command.
REWRITES = {
    "#!@duckscript\nsleep ${CARGO_MAKE_WAIT_MILLISECONDS}\n": (
        'sleep "$(awk "BEGIN { print ${CARGO_MAKE_WAIT_MILLISECONDS} / 1000 }")"\n'
    ),
    "#!@duckscript\nrm ./Cargo.lock\n": "rm -f ./Cargo.lock\n",
    "#!@duckscript\nrm ${CARGO_MAKE_WORKSPACE_WORKING_DIRECTORY}/Cargo.lock\n": (
        'rm -f "${CARGO_MAKE_WORKSPACE_WORKING_DIRECTORY}/Cargo.lock"\n'
    ),
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def convert(name: str, text: str) -> str:
    kept = [f"# ---- from cargo-make's {name}.toml\n"]
    for block in re.split(r"(?m)^(?=\[)", text):
        task = re.match(r"\[tasks\.([A-Za-z0-9_-]+)", block)
        if block.startswith("[config]") or (task and task[1] in NOT_PROVIDED):
            continue
        if task and task[1].startswith("print-") and task[1].endswith("-env"):
            block = block.replace("#!@duckscript\n", "")  # echo lines run the same with sh
        if not block.startswith("[") and name != "stable":
            block = block.strip("\n") + "\n" if block.strip() else ""
        kept.append(block)
    return "".join(kept)


def main() -> int:
    repo = Path(sys.argv[1])
    commit = git(repo, "rev-parse", "HEAD").strip()
    parts = [
        convert(name, git(repo, "show", f"HEAD:src/lib/descriptor/makefiles/{name}.toml"))
        for name in FILES
    ]
    text = "\n".join(parts)
    for old, new in REWRITES.items():
        text = text.replace(old, new)
    if "@duckscript" in text:
        raise SystemExit("duckscript left in the output: add the task to NOT_PROVIDED")
    header = TARGET.read_text().split("\n\n", 1)[0]
    header = re.sub(r"cargo-make [0-9a-f]{12}", f"cargo-make {commit[:12]}", header)
    TARGET.write_text(header + "\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
