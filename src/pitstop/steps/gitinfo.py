"""Git information for `CARGO_MAKE_GIT_*`, read from the `.git` files directly, no subprocess.

These are small file reads, but on a network file system or a cold cache they can take a
while: callers on the event loop run `git_env` in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


def _git_dir(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        dot_git = directory / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                return (directory / text[len("gitdir:") :].strip()).resolve()
    return None


def _git_config_user(paths: Sequence[Path]) -> dict[str, str]:
    """`user.name` / `user.email` from git config files (later files win)."""
    found: dict[str, str] = {}
    for path in paths:
        for section, key, value in _config_items(path):
            if section == "user" and key in ("name", "email"):
                found[key] = value
    return found


def _config_items(path: Path) -> Iterator[tuple[str, str, str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line[1:].split("]", 1)[0].split()[0].lower() if "]" in line else ""
            continue
        key, sep, value = line.partition("=")
        if sep:
            yield section, key.strip().lower(), value.strip().strip('"')


def git_env(cwd: Path, base_env: Mapping[str, str]) -> dict[str, str]:
    """`CARGO_MAKE_GIT_BRANCH`, `_USER_NAME`, `_USER_EMAIL` and the head commit, from files."""
    git_dir = _git_dir(cwd)
    if git_dir is None:
        return {}
    out: dict[str, str] = {}
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        head = ""
    commit: str | None = None
    if head.startswith("ref: "):
        ref = head[5:]
        out["CARGO_MAKE_GIT_BRANCH"] = ref.removeprefix("refs/heads/")
        commit = _resolve_ref(git_dir, ref)
    elif head:
        commit = head
    if commit:
        out["CARGO_MAKE_GIT_HEAD_LAST_COMMIT_HASH"] = commit
        out["CARGO_MAKE_GIT_HEAD_LAST_COMMIT_HASH_PREFIX"] = commit[:7]
    home = Path(base_env.get("HOME", str(Path.home())))
    xdg = Path(base_env.get("XDG_CONFIG_HOME", str(home / ".config")))
    user = _git_config_user([xdg / "git" / "config", home / ".gitconfig", git_dir / "config"])
    if "name" in user:
        out["CARGO_MAKE_GIT_USER_NAME"] = user["name"]
    if "email" in user:
        out["CARGO_MAKE_GIT_USER_EMAIL"] = user["email"]
    return out


def _resolve_ref(git_dir: Path, ref: str) -> str | None:
    # A worktree keeps its refs in the common dir.
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = (git_dir / commondir.read_text(encoding="utf-8").strip()).resolve()
    for base in (git_dir, common):
        loose = base / ref
        if loose.is_file():
            return loose.read_text(encoding="utf-8").strip() or None
    try:
        packed = (common / "packed-refs").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and line[0] not in "#^":
            return sha
    return None
