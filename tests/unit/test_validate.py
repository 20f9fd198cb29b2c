"""Raw TOML → model: value shapes, warnings with lines, and the key locator."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest

from pitstop.errors import Location, TaskFileError
from pitstop.taskfile.addresses import ListenAddress
from pitstop.taskfile.locate import locate
from pitstop.taskfile.model import (
    Condition,
    EnvConditional,
    EnvDecode,
    EnvGlob,
    EnvProfile,
    EnvScript,
    EnvUnset,
    RunTaskSpec,
    ScriptFile,
    ScriptSections,
    Taskfile,
    WatchOptions,
)
from pitstop.taskfile.service import ReadyHttp, ServiceSpec
from pitstop.taskfile.validate import validate

PATH = Path("/project/Makefile.toml")


def check(text: str) -> Taskfile:
    text = textwrap.dedent(text)
    return validate(tomllib.loads(text), locate(text, PATH))


def values(entries: tuple[object, ...]) -> dict[str, object]:
    return {entry.key: entry.value for entry in entries}  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- locate


def test_locator_finds_headers_dotted_keys_inline_tables_and_items() -> None:
    text = textwrap.dedent(
        """\
        [tasks.a]
        script.main = "x"
        env = { A = "1",
                B = { value = "2" } }
        dependencies = [
            "b",
            { name = "c", path = "sub" },
        ]
        [tasks.a.linux]
        'quoted key' = 1
        [[list]]
        x = 1
        [[list]]
        x = '''
        multi
        '''
        y = 2
        """
    )
    locator = locate(text, PATH)
    lines = {
        ("tasks", "a"): 1,
        ("tasks", "a", "script"): 2,
        ("tasks", "a", "script", "main"): 2,
        ("tasks", "a", "env", "A"): 3,
        ("tasks", "a", "env", "B", "value"): 4,
        ("tasks", "a", "dependencies"): 5,
        ("tasks", "a", "dependencies", 0): 6,
        ("tasks", "a", "dependencies", 1, "path"): 7,
        ("tasks", "a", "linux"): 9,
        ("tasks", "a", "linux", "quoted key"): 10,
        ("list", 0, "x"): 12,
        ("list", 1, "x"): 14,
        ("list", 1, "y"): 17,
    }
    assert {key: locator.at(key).line for key in lines} == lines
    # A key that was never written falls back to its nearest written ancestor.
    assert locator.at(("tasks", "a", "nothing")).line == 1


# ----------------------------------------------------------------------------- task attributes


def test_scalar_and_list_attributes() -> None:
    task = check(
        """
        [tasks.t]
        description = "d"
        private = true
        deprecated = "use u"
        command = "echo"
        args = ["a", "b"]
        dependencies = ["x", { name = "y", path = "sub" }]
        """
    ).tasks["t"]
    assert (task.description, task.private, task.deprecated, task.command) == (
        "d",
        True,
        "use u",
        "echo",
    )
    assert task.args == ("a", "b")
    assert [(d.name, d.path, d.location.line) for d in task.dependencies or ()] == [
        ("x", None, 8),
        ("y", "sub", 8),
    ]
    assert task.where("args").line == 7 and task.location.line == 2
    assert task.clear is None and task.env is None  # unset stays None


def test_script_forms() -> None:
    tasks = check(
        """
        [tasks.s]
        script = "echo"
        [tasks.l]
        script = ["a", "b"]
        [tasks.f]
        script = { file = "x.sh", absolute_path = true }
        [tasks.p]
        script.pre = "p"
        script.main = ["m1", "m2"]
        """
    ).tasks
    assert tasks["s"].script == "echo"
    assert tasks["l"].script == "a\nb"
    assert tasks["f"].script == ScriptFile("x.sh", True)
    assert tasks["p"].script == ScriptSections(pre="p", main="m1\nm2")


def test_run_task_forms() -> None:
    tasks = check(
        """
        [tasks.a]
        run_task = "x"
        [tasks.b]
        run_task = { name = ["x", "y"], fork = true, parallel = true, cleanup_task = "c" }
        [tasks.c]
        run_task = [
            { name = "x", condition = { platforms = ["linux"] } },
            { name = "y", condition_script = ["exit 0"] },
        ]
        """
    ).tasks
    (a,) = tasks["a"].run_task or ()
    assert a.names == ("x",) and not a.fork
    (b,) = tasks["b"].run_task or ()
    assert (b.names, b.fork, b.parallel, b.cleanup_task) == (("x", "y"), True, True, "c")
    first, second = tasks["c"].run_task or ()
    assert isinstance(first, RunTaskSpec) and first.condition is not None
    assert first.condition.platforms == ("linux",) and first.location.line == 8
    assert second.condition_script == "exit 0"


def test_condition() -> None:
    condition = (
        check(
            """
        [tasks.t]
        condition = { condition_type = "GroupOr", env_set = ["A"], env = { B = "1" }, files_modified = { input = ["i"], output = ["o"] }, fail_message = "no" }
        """
        )
        .tasks["t"]
        .condition
    )
    assert isinstance(condition, Condition)
    assert condition.condition_type == "GroupOr"
    assert condition.env_set == ("A",) and condition.env == (("B", "1"),)
    assert condition.files_modified is not None and condition.files_modified.input == ("i",)
    assert condition.fail_message == "no" and condition.profiles is None


def test_watch_forms() -> None:
    tasks = check(
        """
        [tasks.a]
        watch = true
        [tasks.b]
        watch = { postpone = true, ignore_pattern = "*.log", watch = ["src"], why = true }
        [tasks.c]
        watch = false
        """
    ).tasks
    assert tasks["a"].watch == WatchOptions()
    assert tasks["b"].watch == WatchOptions(
        postpone=True, ignore_pattern=("*.log",), paths=("src",), why=True
    )
    assert tasks["c"].watch == WatchOptions(enabled=False)


def test_platform_tables() -> None:
    task = check(
        """
        [tasks.t]
        command = "a"
        [tasks.t.linux]
        command = "b"
        clear = true
        """
    ).tasks["t"]
    assert task.linux is not None and (task.linux.command, task.linux.clear) == ("b", True)
    assert task.linux.location.line == 4 and task.mac is None


def test_service_is_parsed_into_a_typed_spec_with_its_location() -> None:
    taskfile = check(
        """
        [tasks.web]
        command = "serve"
        service = { proxy = 8000, ready = { http = "/health" } }
        """
    )
    web = taskfile.tasks["web"]
    assert isinstance(web.service, ServiceSpec)
    assert web.service.proxy == ListenAddress("tcp", "127.0.0.1", 8000)
    assert web.service.ready == ReadyHttp("/health")
    assert web.service.location == web.where("service") == Location(PATH, 4, 1)
    assert taskfile.warnings == ()


def test_a_platform_table_service_is_parsed_too() -> None:
    task = check(
        """
        [tasks.web]
        command = "serve"
        [tasks.web.linux]
        service = { listen = 8000 }
        """
    ).tasks["web"]
    assert task.service is None
    assert task.linux is not None and task.linux.service is not None


def service_error(text: str) -> TaskFileError:
    with pytest.raises(TaskFileError) as info:
        check(text)
    return info.value


def test_a_service_mistake_points_at_its_key_in_an_inline_table() -> None:
    error = service_error(
        """
        [tasks.web]
        command = "serve"
        service = { listen = "127.0.0.1:8080", ready = { delay = "soon" } }
        """
    )
    assert error.location == Location(PATH, 4, 50)
    assert error.message.startswith('task "web" in Makefile.toml: service.ready.delay must be')


def test_a_service_mistake_points_at_its_key_in_a_sub_table() -> None:
    error = service_error(
        """
        [tasks.web]
        command = "serve"

        [tasks.web.service]
        listen = ["127.0.0.1:8080",
                  "127.0.0.1:99999"]
        """
    )
    assert error.location == Location(PATH, 7, 11)
    assert "service.listen[1] is not an address" in error.message
    assert error.exit_code == 2


def test_a_service_that_is_not_a_table_points_at_the_service_key() -> None:
    error = service_error(
        """
        [tasks.web]
        command = "serve"
          service = "8080"
        """
    )
    assert error.location == Location(PATH, 4, 3)
    assert "service must be a table" in error.message


# ----------------------------------------------------------------------------- env


def test_env_value_kinds() -> None:
    env = values(
        check(
            """
            [env]
            S = "s"
            B = true
            F = false
            I = 42
            L = ["a", "${S}"]
            U = { unset = true }
            SCRIPT = { script = ["echo hi"], multi_line = true }
            DECODE = { source = "${S}", mapping = { s = "x" }, default_value = "d" }
            COND = { value = "v", condition = { env_set = ["S"] } }
            GLOB = { glob = "*.py", include_dirs = false }
            [env.ci]
            P = "p"
            """
        ).env
    )
    assert env["S"] == "s" and env["B"] == "true" and env["F"] == "false" and env["I"] == "42"
    assert env["L"] == ("a", "${S}")
    assert env["U"] == EnvUnset()
    assert env["SCRIPT"] == EnvScript(lines=("echo hi",), multi_line=True)
    assert env["DECODE"] == EnvDecode(source="${S}", mapping=(("s", "x"),), default_value="d")
    assert isinstance(env["COND"], EnvConditional) and env["COND"].value == "v"
    assert env["GLOB"] == EnvGlob(glob="*.py", include_dirs=False)
    assert isinstance(env["ci"], EnvProfile) and values(env["ci"].entries) == {"P": "p"}


def test_env_files_and_config() -> None:
    taskfile = check(
        """
        env_files = ["./a.env", { path = "./b.env", profile = "ci", defaults_only = true }]
        env_scripts = ["echo hi"]
        [config]
        skip_core_tasks = true
        init_task = "setup"
        additional_profiles = ["x"]
        [tasks.t]
        env_files = ["./t.env"]
        env = { K = 1 }
        """
    )
    first, second = taskfile.env_files
    assert first.path == "./a.env" and first.location.line == 2
    assert (second.path, second.profile, second.defaults_only) == ("./b.env", "ci", True)
    assert taskfile.env_scripts == ("echo hi",)
    assert taskfile.config.skip_core_tasks and taskfile.config.init_task == "setup"
    assert taskfile.config.end_task == "end" and taskfile.config.additional_profiles == ("x",)
    task = taskfile.tasks["t"]
    assert values(task.env or ()) == {"K": "1"}
    assert [f.path for f in task.env_files or ()] == ["./t.env"]


# ----------------------------------------------------------------------------- warnings


def test_unknown_keys_warn_with_file_line_and_key() -> None:
    taskfile = check(
        """
        toplevel = 1
        [tasks.t]
        command = "echo"
        comand = "typo"
        condition = { env_sett = ["X"] }
        [tasks.t.linux]
        alias = "x"
        """
    )
    found = {(w.location.line, w.message.split(": ")[-1]) for w in taskfile.warnings}
    assert found == {
        (2, 'unknown key "toplevel", ignored'),
        # A close known key is suggested: a misspelt `command` leaves a task doing nothing.
        (5, 'unknown key "comand", ignored; did you mean "command"?'),
        (6, 'unknown key "env_sett", ignored; did you mean "env_set"?'),
        (8, 'unknown key "alias", ignored'),
    }
    comand = next(w for w in taskfile.warnings if "comand" in w.message)
    assert comand.message.startswith("/project/Makefile.toml:5")
    assert comand.location.path == PATH


def test_rust_specific_keys_warn_but_are_accepted() -> None:
    taskfile = check(
        """
        [config]
        default_to_workspace = true
        [tasks.t]
        install_script = "cargo install foo"
        workspace = true
        condition = { rust_version = { min = "1.70.0" } }
        [plugins.impl.x]
        script = "x"
        """
    )
    lines = sorted(w.location.line for w in taskfile.warnings)
    assert lines == [3, 5, 6, 7, 8]
    assert all("Rust-specific" in w.message for w in taskfile.warnings)


def test_rust_settings_asking_for_what_pitstop_does_are_silent() -> None:
    taskfile = check(
        """
        [config]
        default_to_workspace = false
        load_cargo_aliases = false
        time_summary = true
        [tasks.t]
        workspace = false
        """
    )
    assert taskfile.warnings == ()
    assert taskfile.config.time_summary is True


TRICKY = "\n".join(
    [
        "# comment [tasks.fake]",
        r'"quoted.key" = "a\"b # not a comment"',
        r'"\u00e9t\u00e9" = 1',
        r"'lit' = 'c:\path # x'",
        '[ tasks . "a b" ]   # header with spaces',
        'script = """',
        "has ''' and \" and \\",
        "continued [tasks.nope]",
        '"""',
        "args = [ # comment",
        '  "x", # trailing',
        "  [1, 2], { k = [ { z = 1 } ] },",
        "]",
        "[[tasks.a.run_task]]",
        'name = "n1"',
        "[[tasks.a.run_task]]",
        'condition = { env = { "A.B" = "1" } }',
        "[tasks.u]",
        'env.K.value = "v"',
        "",
    ]
)


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix] if prefix else []
    items = (
        list(value.items())
        if isinstance(value, dict)
        else list(enumerate(value))
        if isinstance(value, list)
        else []
    )
    for key, item in items:
        found += _paths(item, (*prefix, key))
    return found


def test_locator_finds_every_key_path_tomllib_sees() -> None:
    locator = locate(TRICKY, PATH)
    missing = [p for p in _paths(tomllib.loads(TRICKY)) if not locator.has(p)]
    assert missing == []
    assert locator.at(("été",)).line == 3
    assert locator.at(("tasks", "a b", "args", 2, "k", 0, "z")).line == 12
    assert locator.at(("tasks", "a", "run_task", 1, "condition", "env", "A.B")).line == 17
