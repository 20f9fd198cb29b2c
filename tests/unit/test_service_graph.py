"""The service graph (manager/graph.py): which services, in which order, with which builds, and
the bad-input errors, each naming file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pitstop.errors import PlanError, UserError
from pitstop.manager.graph import ServiceGraph, definition, load_graph, shared_definition
from pitstop.taskfile.loader import load_taskfile

THREE = """
[tasks.compile]
command = "true"

[tasks.build-api]
dependencies = ["compile"]
command = "true"

[tasks.build-web]
dependencies = ["compile"]
command = "true"

[tasks.web]
dependencies = ["api", "build-web"]
command = "web"
service = { listen = "127.0.0.1:9003" }

[tasks.db]
command = "db"
service = { listen = "127.0.0.1:9001" }

[tasks.api]
dependencies = ["db", "build-api"]
command = "api"
service = { proxy = "127.0.0.1:9002" }

[tasks.lint]
command = "true"
"""


def graph_of(tmp_path: Path, text: str) -> ServiceGraph:
    (tmp_path / "pitstop.toml").write_text(textwrap.dedent(text))
    taskfile = load_taskfile(None, tmp_path)
    return load_graph(taskfile, cwd=tmp_path)


def test_services_come_in_dependency_order_with_their_builds(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, THREE)
    assert graph.names == ("db", "api", "web")
    api = graph.node("api")
    assert api.depends_on == ("db",)
    # init is in every plan: each service runs it itself, it is not a shared step.
    assert [(b.step.name, b.shared_key) for b in api.build] == [
        ("init", None),
        ("compile", "compile"),
        ("build-api", "build-api"),
    ]
    # The walk stops at a service: web's build is its own, not api's.
    web = graph.node("web")
    assert web.depends_on == ("api",)
    assert [b.step.name for b in web.build] == ["init", "compile", "build-web"]
    assert [b.step.name for b in graph.node("db").build] == ["init"]


def test_a_shared_build_step_ties_services_together(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, THREE)
    assert graph.node("api").shared_keys & graph.node("web").shared_keys == {"compile"}
    assert graph.sharing(["api"]) == ("api", "web")
    assert graph.sharing(["db"]) == ("db",)
    assert graph.dependants("db") == ("api", "web")


def test_select_takes_the_named_services_and_their_dependencies(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, THREE)
    assert graph.select(["api"]).names == ("db", "api")
    assert graph.select([]).names == ("db", "api", "web")
    assert graph.select(["web", "db"]).names == ("db", "api", "web")


def test_an_unknown_service_suggests_close_names(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, THREE)
    with pytest.raises(UserError) as caught:
        graph.select(["apu"])
    assert "no service named 'apu'" in caught.value.message
    assert caught.value.hint is not None and "'api'" in caught.value.hint
    assert caught.value.location is not None
    assert caught.value.location.path == tmp_path / "pitstop.toml"


def test_a_plain_task_is_not_a_service(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, THREE)
    with pytest.raises(UserError) as caught:
        graph.select(["lint"])
    assert caught.value.message == 'task "lint" is not a service'
    assert (
        caught.value.location is not None
        and caught.value.location.line == THREE.splitlines().index("[tasks.lint]") + 1
    )


def test_a_cycle_between_services_names_the_whole_circle(tmp_path: Path) -> None:
    text = """
    [tasks.a]
    dependencies = ["b"]
    command = "a"
    service = { listen = "127.0.0.1:9001" }

    [tasks.b]
    dependencies = ["build-b"]
    command = "b"
    service = { listen = "127.0.0.1:9002" }

    [tasks.build-b]
    dependencies = ["a"]
    command = "true"
    """
    with pytest.raises(PlanError) as caught:
        graph_of(tmp_path, text)
    assert "a -> b -> build-b -> a" in caught.value.message
    assert caught.value.location is not None
    assert caught.value.location.line == 13  # the dependency that closes the circle


def test_two_services_on_one_address_name_both_lines(tmp_path: Path) -> None:
    text = """
    [tasks.one]
    command = "one"
    service = { listen = "127.0.0.1:9001" }

    [tasks.two]
    command = "two"
    service = { proxy = "0.0.0.0:9001" }
    """
    with pytest.raises(UserError) as caught:
        graph_of(tmp_path, text)
    error = caught.value
    assert "services one and two both listen on 0.0.0.0:9001" in error.message
    assert error.location is not None and error.location.line == 8
    assert error.hint is not None and "pitstop.toml:4" in error.hint


def test_port_zero_never_clashes(tmp_path: Path) -> None:
    text = """
    [tasks.one]
    command = "one"
    service = { listen = "127.0.0.1:0" }

    [tasks.two]
    command = "two"
    service = { listen = "127.0.0.1:0" }
    """
    assert graph_of(tmp_path, text).names == ("one", "two")


def _definitions(graph: ServiceGraph) -> dict[str, object]:
    return {n.name: definition(n, graph.taskfile) for n in graph.nodes}


def test_definitions_ignore_where_things_are_written_and_watch_options(tmp_path: Path) -> None:
    before = _definitions(graph_of(tmp_path, THREE))
    moved = "# a comment\n\n" + THREE.replace('command = "db"', 'command = "db"\nwatch = true')
    assert _definitions(graph_of(tmp_path, moved)) == before


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        (('command = "db"', 'command = "db2"'), {"db"}),
        (('command = "api"', 'command = "api"\nenv = { X = "1" }'), {"api"}),
        (('"127.0.0.1:9003"', '"127.0.0.1:9004"'), {"web"}),
        # A shared build step: both services that build with it.
        (
            ('[tasks.compile]\ncommand = "true"', '[tasks.compile]\ncommand = "make"'),
            {"api", "web"},
        ),
        (('[tasks.build-web]\ndependencies = ["compile"]', "[tasks.build-web]"), {"web"}),
    ],
)
def test_definitions_change_with_what_a_service_runs(
    tmp_path: Path, edit: tuple[str, str], changed: set[str]
) -> None:
    before = _definitions(graph_of(tmp_path, THREE))
    assert edit[0] in THREE
    after = _definitions(graph_of(tmp_path, THREE.replace(*edit)))
    assert {name for name in before if before[name] != after[name]} == changed


def test_the_files_own_env_is_every_services(tmp_path: Path) -> None:
    first = graph_of(tmp_path, THREE).taskfile
    second = graph_of(tmp_path, '[env]\nX = "1"\n' + THREE).taskfile
    assert shared_definition(first) != shared_definition(second)
    assert shared_definition(first) == shared_definition(graph_of(tmp_path, THREE).taskfile)


SUB_FLOW = """
[tasks.gen]
dependencies = ["gen-deps"]
command = "gen"

[tasks.gen-deps]
command = "fetch"

[tasks.tidy]
command = "tidy"

[tasks.build-api]
run_task = { name = "gen", cleanup_task = "tidy" }

[tasks.api]
dependencies = ["build-api"]
command = "api"
service = { listen = "127.0.0.1:9002" }

[tasks.db]
command = "db"
service = { listen = "127.0.0.1:9001" }
"""


@pytest.mark.parametrize(
    "edit",
    [
        ('command = "gen"', 'command = "gen2"'),  # the sub-flow a build step runs
        ('command = "fetch"', 'command = "fetch2"'),  # a dependency of that sub-flow
        ('command = "tidy"', 'command = "tidy2"'),  # its cleanup task
    ],
)
def test_a_sub_flow_a_build_runs_is_part_of_its_definition(
    tmp_path: Path, edit: tuple[str, str]
) -> None:
    """run_task's tasks are planned when they run, so no plan step holds them."""
    first = graph_of(tmp_path, SUB_FLOW)
    before = {n.name: definition(n, first.taskfile) for n in first.nodes}
    assert edit[0] in SUB_FLOW
    second = graph_of(tmp_path, SUB_FLOW.replace(*edit))
    after = {n.name: definition(n, second.taskfile) for n in second.nodes}
    assert {name for name in before if before[name] != after[name]} == {"api"}
