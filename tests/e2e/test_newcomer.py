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


# --------------------------------------------------------------------------- warnings (item 3)


def test_settings_that_ask_for_what_pitstop_does_are_silent(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true
        default_to_workspace = false
        time_summary = true

        [tasks.a]
        workspace = false
        script = "echo ran"
        """
    )
    result = project.run("a")
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr
    # time_summary is honoured, not only accepted.
    assert "ran" in result.stdout
    assert "==== Time Summary ====" in result.stderr


def test_settings_pitstop_will_not_honour_still_warn(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true
        default_to_workspace = true

        [tasks.a]
        workspace = true
        script = "echo ran"
        """
    )
    result = project.run("a")
    assert result.returncode == 0, result.stderr
    warnings = sorted(line for line in result.stderr.splitlines() if "WARN" in line)
    assert len(warnings) == 2, result.stderr
    assert "Makefile.toml:4" in warnings[0] and "default_to_workspace" in warnings[0]
    assert "Makefile.toml:7" in warnings[1] and "workspace" in warnings[1]


def test_duckscript_is_reported_at_load_once_per_task(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.first]
        script = "echo first ran"

        [tasks.duck]
        dependencies = ["first"]
        script = '''
        #!@duckscript
        echo hello
        '''

        [tasks.duck.linux]
        script = '''
        #!@duckscript
        echo hello linux
        '''

        [tasks.rusty]
        script_runner = "@rust"
        script = "fn main() {}"
        """
    )
    # --print-steps runs nothing: the report comes from loading the file.
    result = project.run("--print-steps", "duck")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARN" in line]
    assert len(warnings) == 2, result.stderr
    assert "Makefile.toml:10" in warnings[0] and "@duckscript" in warnings[0]
    assert '"duck"' in warnings[0]
    assert "Makefile.toml:22" in warnings[1] and "@rust" in warnings[1]


# --------------------------------------------------------------------------- no silent no-op (2)


def test_no_task_file_says_so(project: Project) -> None:
    result = project.run()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no task file" in result.stderr
    assert "pitstop.toml" in result.stderr and "Makefile.toml" in result.stderr
    assert str(project.root) in result.stderr
    assert "Build Done" not in result.stderr
    # No "--> Makefile.toml" pointer: that file does not exist.
    assert "-->" not in result.stderr


def test_list_without_any_task_file_says_so_too(project: Project) -> None:
    # Not the base tasks (init, end, empty, "default - Empty Task") as if they were the project's.
    result = project.run("--list")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert "no task file: looked for pitstop.toml and Makefile.toml" in result.stderr
    assert "(for --list)" in result.stderr


def test_a_plan_without_any_action_says_so_in_one_line(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.default]
        dependencies = ["a"]

        [tasks.a]
        description = "does nothing yet"
        """
    )
    result = project.run()
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "nothing to run" in lines[0] and '"default"' in lines[0]
    assert "(4 steps)" in lines[0]


def test_a_misspelt_task_key_is_warned_with_the_key_it_was_probably_meant_to_be(
    project: Project,
) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.hello]
        comand = "echo"
        args = ["hi"]
        """
    )
    result = project.run("hello")
    assert result.returncode == 0, result.stderr  # unknown keys never stop a run
    assert 'Makefile.toml:6:1: task "hello": unknown key "comand", ignored' in result.stderr
    assert 'did you mean "command"?' in result.stderr
