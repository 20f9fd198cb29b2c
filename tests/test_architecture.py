"""The layout's rules, checked on the source: no import cycles, argparse only in the command
line, and only the command line touches the process's stdout and stderr.

The import graph counts every import a module can run: at module level and inside functions
(lazy imports close cycles too, only later), but not those under `if TYPE_CHECKING:`, which
never run. Importing `pkg.mod` runs `pkg/__init__` first, so a module depends on every
package above it as well as on what it names.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "pitstop"

# Modules allowed to import argparse: the command line itself, and the shell completion
# that cli hands its parsers to (it reads their flags; nothing below cli sees a parser).
ARGPARSE_ALLOWED = {"pitstop.cli", "pitstop.completion"}
# Modules allowed to name sys.stdout / sys.stderr or call print(): the command line, which
# hands the streams down to whatever writes (the printer, listings).
TERMINAL_ALLOWED = {"pitstop.cli"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:` (its else branch does run)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & MODULES.keys()


def _imports(module: str, path: Path) -> set[str]:
    """The pitstop modules that importing `module` runs (its own packages included)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    here = module if is_package else module.rpartition(".")[0]
    targets: set[str] = set(_with_parents(module)) - {module}
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                targets |= _with_parents(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets |= _with_parents(base)
            for alias in node.names:
                targets |= _with_parents(f"{base}.{alias.name}")
    targets.discard(module)
    return {t for t in targets if t.startswith(PACKAGE)}


def import_graph() -> dict[str, set[str]]:
    return {module: _imports(module, path) for module, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_lazy_imports_and_parent_packages() -> None:
    """The checker itself: a function-level import and pkg/__init__ both count."""
    graph = import_graph()
    assert "pitstop.app.dispatch" in graph["pitstop.cli"]  # imported inside main()
    assert "pitstop.supervisor" in graph["pitstop.supervisor.sockets"]


def test_no_import_cycles() -> None:
    cycles = _cycles(import_graph())
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_package_inits_import_nothing() -> None:
    """A package's __init__ is a docstring: importing `pkg.mod` loads only what mod needs."""
    heavy = []
    for module, path in MODULES.items():
        if path.name != "__init__.py" or module == PACKAGE:
            continue
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)):
            heavy.append(module)
    assert heavy == []


def test_only_cli_imports_argparse() -> None:
    users = sorted(
        module
        for module, path in MODULES.items()
        if any(
            (isinstance(n, ast.Import) and any(a.name == "argparse" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and n.module == "argparse")
            for n in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert set(users) <= ARGPARSE_ALLOWED, users


def _terminal_uses(tree: ast.AST) -> list[str]:
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "print":
                uses.append(f"print() at line {node.lineno}")
        elif isinstance(node, ast.Attribute) and node.attr in (
            "stdout",
            "stderr",
            "__stdout__",
            "__stderr__",
        ):
            if isinstance(node.value, ast.Name) and node.value.id == "sys":
                uses.append(f"sys.{node.attr} at line {node.lineno}")
        elif isinstance(node, ast.ImportFrom) and node.module == "sys":
            names = {a.name for a in node.names}
            if names & {"stdout", "stderr", "__stdout__", "__stderr__"}:
                uses.append(f"from sys import at line {node.lineno}")
    return uses


def test_only_cli_writes_to_the_terminal() -> None:
    """Everything else reports events (or returns text); the streams are handed down."""
    offenders = {
        module: uses
        for module, path in MODULES.items()
        if module not in TERMINAL_ALLOWED and (uses := _terminal_uses(ast.parse(path.read_text())))
    }
    assert offenders == {}


def test_public_type_names_have_one_definition() -> None:
    """Two `RunFinished`s (or `WatchOptions`, `ProxyMode`) in one stream of events or one
    import list mean two things under one name; each public class or type alias is defined once."""
    defined: dict[str, list[str]] = {}
    for module, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            names: list[str] = []
            if isinstance(node, ast.ClassDef):
                names = [node.name]
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [
                    t.id
                    for t in targets
                    if isinstance(t, ast.Name) and t.id[:1].isupper() and not t.id.isupper()
                ]
            for name in names:
                if not name.startswith("_"):  # module-private helpers may share a name
                    defined.setdefault(name, []).append(module)
    twice = {name: where for name, where in defined.items() if len(where) > 1}
    assert twice == {}


# What a plain `pitstop TASK` may load of the service and watch code: the watch settings'
# own values (`settings` names them for every command) and the packages above them.
PLAIN_RUN_ALLOWED = {"pitstop.watch", "pitstop.watch.choices"}


def test_a_plain_run_imports_no_service_or_watch_code(tmp_path: Path) -> None:
    """Checked by running one: lazy imports are the point, so the static graph cannot tell."""
    import subprocess
    import sys

    (tmp_path / "Makefile.toml").write_text(
        '[config]\nskip_core_tasks = true\n\n[tasks.a]\ncommand = "true"\n\n'
        '[tasks.b]\ndependencies = ["a"]\ncommand = "true"\n'
    )
    script = (
        "import sys\n"
        "sys.argv = ['pitstop', '-q', '-j', '2', 'b']\n"
        "from pitstop.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "prefixes = ('pitstop.supervisor', 'pitstop.manager', 'pitstop.watch')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(prefixes))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(done.stdout.split())
    assert loaded - PLAIN_RUN_ALLOWED == set(), done.stdout
