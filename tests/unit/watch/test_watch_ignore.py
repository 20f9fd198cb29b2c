"""Table-driven tests of the gitignore matcher and the path filter (real files in tmp_path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pitstop.watch.filters import FilterOptions, PathFilter
from pitstop.watch.ignore import GitIgnore, compile_rule, parse_lines

# (pattern, path relative to the ignore file's directory, is_dir, matches)
RULE_CASES: list[tuple[str, str, bool, bool]] = [
    ("*.log", "a.log", False, True),
    ("*.log", "deep/down/a.log", False, True),
    ("*.log", "a.logx", False, False),
    ("/build", "build", True, True),
    ("/build", "src/build", True, False),
    ("build/", "build", True, True),
    ("build/", "build", False, False),  # dir-only does not match a file
    ("build/", "src/build", True, True),  # no inner slash: any depth
    ("doc/frotz", "doc/frotz", True, True),
    ("doc/frotz", "a/doc/frotz", True, False),  # inner slash anchors
    ("**/foo", "foo", False, True),
    ("**/foo", "x/y/foo", False, True),
    ("**/foo/bar", "x/foo/bar", False, True),
    ("abc/**", "abc/x", False, True),
    ("abc/**", "abc/x/y", False, True),
    ("abc/**", "abc", True, False),
    ("a/**/b", "a/b", False, True),
    ("a/**/b", "a/x/y/b", False, True),
    ("a/**/b", "a/xb", False, False),
    ("*", "anything/at/all", False, True),
    ("f?o", "foo", False, True),
    ("f?o", "f/o", False, False),
    ("*.[oa]", "x.o", False, True),
    ("*.[oa]", "x.c", False, False),
    ("*.[!oa]", "x.c", False, True),
    ("*.[!oa]", "x.o", False, False),
    ("a*b", "a/b", False, False),  # "*" never crosses "/"
    ("\\#hash", "#hash", False, True),
    ("\\!bang", "!bang", False, True),
    ("trailing   ", "trailing", False, True),
    ("[", "[", False, True),  # unterminated class is a literal
]


@pytest.mark.parametrize(("pattern", "path", "is_dir", "expected"), RULE_CASES)
def test_rule_matching(pattern: str, path: str, is_dir: bool, expected: bool) -> None:
    rule = compile_rule(pattern)
    assert rule is not None
    assert rule.matches(path, is_dir) is expected


@pytest.mark.parametrize("line", ["", "   ", "# comment", "/", "!"])
def test_blank_and_comment_lines_are_not_rules(line: str) -> None:
    assert compile_rule(line) is None


def test_negation_and_sources() -> None:
    rules = parse_lines("*.log\n\n!keep.log\n", "x/.gitignore")
    assert [(r.pattern, r.negated, r.source) for r in rules] == [
        ("*.log", False, "x/.gitignore:1"),
        ("!keep.log", True, "x/.gitignore:3"),
    ]


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# (ignore files {relative path: content}, path to check, is_dir, ignored)
TREE_CASES: list[tuple[dict[str, str], str, bool, bool]] = [
    ({".gitignore": "*.log\n!keep.log\n"}, "a.log", False, True),
    ({".gitignore": "*.log\n!keep.log\n"}, "keep.log", False, False),  # later rule wins
    ({".gitignore": "!keep.log\n*.log\n"}, "keep.log", False, True),  # ... in order
    ({"sub/.gitignore": "*.gen\n"}, "sub/x.gen", False, True),  # nested applies below
    ({"sub/.gitignore": "*.gen\n"}, "x.gen", False, False),  # ... and not above
    ({"sub/.gitignore": "/only\n"}, "sub/only", False, True),  # anchored to its dir
    ({"sub/.gitignore": "/only\n"}, "sub/deeper/only", False, False),
    ({".gitignore": "*.gen\n", "sub/.gitignore": "!x.gen\n"}, "sub/x.gen", False, False),
    ({".gitignore": "out/\n!out/keep.txt\n"}, "out/keep.txt", False, True),  # dir excluded
    ({".gitignore": "out/\n"}, "a/out/b/c.txt", False, True),
    ({".ignore": "*.gen\n"}, "x.gen", False, True),
    ({".gitignore": "*.gen\n", ".ignore": "!x.gen\n"}, "x.gen", False, False),
    ({".git/info/exclude": "secret\n"}, "secret", False, True),
    ({".git/info/exclude": "secret\n", ".gitignore": "!secret\n"}, "secret", False, False),
    ({".gitignore": "data/\n"}, "data", True, True),
    ({".gitignore": "data/\n"}, "data", False, False),
]


@pytest.mark.parametrize(("files", "path", "is_dir", "ignored"), TREE_CASES)
def test_tree(
    tmp_path: Path, files: dict[str, str], path: str, is_dir: bool, ignored: bool
) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    assert GitIgnore(tmp_path).is_ignored(tmp_path / path, is_dir) is ignored


def test_edited_ignore_file_is_reread(tmp_path: Path) -> None:
    gitignore = write(tmp_path / ".gitignore", "*.a\n")
    matcher = GitIgnore(tmp_path, recheck_s=0)  # no grace period: stat on every question
    assert matcher.is_ignored(tmp_path / "x.a", False)
    gitignore.write_text("*.bb\n")
    # Same-second edits must still be seen: the size changed; force a new mtime too.
    os.utime(gitignore, ns=(0, 1))
    assert not matcher.is_ignored(tmp_path / "x.a", False)
    assert matcher.is_ignored(tmp_path / "x.bb", False)
    gitignore.unlink()
    assert not matcher.is_ignored(tmp_path / "x.bb", False)


# (options, path relative to root, accepted)
FILTER_CASES: list[tuple[FilterOptions, str, bool]] = [
    (FilterOptions(), "src/main.py", True),
    (FilterOptions(), "target/debug/app", False),
    (FilterOptions(), "node_modules/x/index.js", False),
    (FilterOptions(), "pkg/__pycache__/m.cpython-311.pyc", False),
    (FilterOptions(), ".git/index", False),
    (FilterOptions(), ".venv/lib/x.py", False),
    (FilterOptions(), ".mypy_cache/x.json", False),
    (FilterOptions(), "src/.main.py.swp", False),
    (FilterOptions(), "src/.main.py.swx", False),
    (FilterOptions(), "src/main.py~", False),
    (FilterOptions(), "src/.#main.py", False),
    (FilterOptions(), "src/#main.py#", False),
    (FilterOptions(), "src/4913", False),
    (FilterOptions(), "src/x.tmp", False),
    (FilterOptions(), "src/main.py___jb_tmp___", False),
    (FilterOptions(), "src/main.py___jb_old___", False),
    (FilterOptions(), "ignored.log", False),  # from the .gitignore below
    (FilterOptions(git_ignore=False), "ignored.log", True),
    (FilterOptions(default_ignores=False), "target/debug/app", True),
    (FilterOptions(ignore_globs=("*.md",)), "docs/a.md", False),
    (FilterOptions(ignore_globs=("docs/",)), "docs/a.txt", False),
    (FilterOptions(ignore_globs=("/docs/*.txt",)), "docs/a.txt", False),
    (FilterOptions(ignore_globs=("/docs/*.txt",)), "src/docs/a.txt", True),
    (FilterOptions(git_ignore=False, ignore_globs=("*.md",)), "a.md", False),
    (FilterOptions(exts=("py", ".rs")), "src/a.py", True),
    (FilterOptions(exts=("py", ".rs")), "src/a.rs", True),
    (FilterOptions(exts=("py", ".rs")), "src/a.txt", False),
    (FilterOptions(exts=("py",)), "ignored.py.log", False),
]


@pytest.mark.parametrize(("options", "path", "accepted"), FILTER_CASES)
def test_path_filter(tmp_path: Path, options: FilterOptions, path: str, accepted: bool) -> None:
    write(tmp_path / ".gitignore", "*.log\n")
    assert PathFilter([tmp_path], options).accepts(tmp_path / path) is accepted


def test_default_ignores_only_count_below_the_root(tmp_path: Path) -> None:
    root = tmp_path / "target" / "app"
    root.mkdir(parents=True)
    assert PathFilter([root]).accepts(root / "main.rs")


def test_gitignore_above_a_nested_watch_path_applies(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path / ".gitignore", "*.gen\n")
    sub = tmp_path / "src"
    sub.mkdir()
    path_filter = PathFilter([sub])
    assert not path_filter.accepts(sub / "x.gen")
    assert path_filter.accepts(sub / "x.py")


def test_explain_names_the_rule(tmp_path: Path) -> None:
    gitignore = write(tmp_path / ".gitignore", "# build outputs\n*.o\n")
    path_filter = PathFilter([tmp_path])
    assert path_filter.explain(tmp_path / "a.o") == f"ignored by {gitignore}:2: *.o"
    assert path_filter.explain(tmp_path / "a.c") is None
    assert path_filter.explain(tmp_path / "target" / "x") == "inside target/ (ignored by default)"


def test_watch_filter_protocol(tmp_path: Path) -> None:
    path_filter = PathFilter([tmp_path])
    assert path_filter(object(), str(tmp_path / "a.py")) is True
    assert path_filter(object(), str(tmp_path / "a.py.swp")) is False


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        ("sedAb12xZ", True),  # sed -i's new file, renamed over the original
        ("sed3kq9Ua", True),
        (".main.py.swp", True),
        (".main.py.swo", True),
        ("main.py~", True),
        (".#main.py", True),
        ("4913", True),
        (".goutputstream-X1Y2Z3", True),
        (".~lock.notes.odt#", True),
        ("sed.py", False),
        ("sediments.txt", False),
        ("main.py", False),
    ],
)
def test_sed_and_editor_temp_files_are_ignored(tmp_path: Path, name: str, ignored: bool) -> None:
    path_filter = PathFilter([tmp_path], FilterOptions(git_ignore=False))
    assert path_filter.accepts(tmp_path / name) is not ignored
