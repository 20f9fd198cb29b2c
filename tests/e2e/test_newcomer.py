"""Issue 12, items 2-4: no silent no-op, warnings that mean something, errors at the cause."""

from __future__ import annotations

from tests.e2e.conftest import Project

# --------------------------------------------------------------------------- errors (item 4)


def test_missing_cross_file_folder_names_the_path_line(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.all]
        dependencies = [{ name = "build", path = "backend" }]
        """
    )
    result = project.run("all")
    assert result.returncode == 2, result.stderr
    folder = project.root / "backend"
    assert f"folder {folder} (from `path` at " in result.stderr
    assert "Makefile.toml:6" in result.stderr
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_utf8_names_line_and_column(project: Project) -> None:
    text = '[tasks.a]\ndescription = "caf\xe9 \xe9t\xe9"\ncommand = "true"\n'
    # Latin-1 bytes: the first bad byte is the "\xe9" on line 2, column 19.
    (project.root / "Makefile.toml").write_bytes(text.encode("latin-1"))
    result = project.run("a")
    assert result.returncode == 2, result.stderr
    assert "Makefile.toml:2:19" in result.stderr
    assert "line 2, column 19" in result.stderr
    assert "0xe9" in result.stderr
    assert "Traceback" not in result.stderr
