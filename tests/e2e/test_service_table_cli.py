"""A broken `service` table fails when the file loads, as every other key does: `pitstop
--list` exits with 2 and points at the broken key's own line and column."""

from __future__ import annotations

import textwrap

import pytest

from tests.e2e.conftest import Project

# (file text, the text the caret must point at, words the message must contain)
BROKEN = {
    "unknown key": (
        """
        [tasks.web]
        command = "serve"
        service = { listen = "127.0.0.1:8080", redy = { notify = true } }
        """,
        "redy",
        ["service.redy is not a service key", "did you mean 'ready'?"],
    ),
    "wrong type": (
        """
        [tasks.web]
        command = "serve"

        [tasks.web.service]
        listen = "127.0.0.1:8080"
        stop_signal = ["TERM"]
        """,
        "stop_signal",
        ["service.stop_signal must be a signal name", "found a list"],
    ),
    "bad duration": (
        """
        [tasks.web]
        command = "serve"
        service.listen = "127.0.0.1:8080"
        service.ready_timeout = "thirty"
        """,
        "service.ready_timeout",
        ["service.ready_timeout must be a duration", "'thirty'"],
    ),
    "bad listen address": (
        """
        [tasks.web]
        command = "serve"
        service = { listen = [
            "127.0.0.1:8080",
            "127.0.0.1:99999",
        ] }
        """,
        '"127.0.0.1:99999"',
        ["service.listen[1] is not an address: the port must be a number from 0 to 65535"],
    ),
    "bad ready table": (
        """
        [tasks.web]
        command = "serve"
        service = { listen = "127.0.0.1:8080", ready = { notify = true, log = "up" } }
        """,
        "ready =",
        ["service.ready must have exactly one check (found notify, log)"],
    ),
    "ready check that needs proxy mode": (
        """
        [tasks.web]
        command = "serve"
        service = { listen = "127.0.0.1:8080", ready = { http = "/health" } }
        """,
        "http",
        ["service.ready.http needs proxy mode"],
    ),
    "listen and proxy together": (
        """
        [tasks.web]
        command = "serve"
        service = { listen = 8080, proxy = 8081 }
        """,
        "proxy",
        ["service.proxy cannot be used together with 'listen'"],
    ),
    "not a table": (
        """
        [tasks.web]
        command = "serve"
        service = "127.0.0.1:8080"
        """,
        "service",
        ["service must be a table"],
    ),
}


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first `needle` in `text`."""
    for number, line in enumerate(text.splitlines(), start=1):
        col = line.find(needle)
        if col >= 0:
            return number, col + 1
    raise AssertionError(f"{needle!r} is not in the file")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_list_fails_at_the_broken_key(project: Project, name: str) -> None:
    text, needle, words = BROKEN[name]
    project.makefile(text)
    line, col = position(textwrap.dedent(text), needle)

    result = project.run("--list")

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith('error: task "web" in Makefile.toml: '), result.stderr
    assert f"  --> Makefile.toml:{line}:{col}\n" in result.stderr, result.stderr
    gutter = " " * len(str(line))
    assert f"\n{gutter} | {' ' * (col - 1)}^\n" in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr


def test_serve_fails_before_building_on_a_broken_table(project: Project) -> None:
    project.makefile(
        """
        [tasks.build]
        script = "touch built"

        [tasks.web]
        dependencies = ["build"]
        command = "serve"
        service = { listen = "127.0.0.1:8080", ready = { delay = "soon" } }
        """
    )
    result = project.run("web")
    assert result.returncode == 2, result.stderr
    assert "Makefile.toml:8:" in result.stderr
    assert "service.ready.delay must be a duration" in result.stderr
    assert not (project.root / "built").exists()


def test_list_marks_service_tasks(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true  # list only this file's tasks, not cargo-make's Rust built-ins

        [tasks.build]
        description = "Compile"

        [tasks.web]
        description = "The site"
        dependencies = ["build"]
        command = "serve"
        service = { proxy = "127.0.0.1:8080", ready = { http = "/health" } }
        """
    )
    result = project.run("--list", "--hide-uninteresting")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "No Category\n----------\n"
        "build - Compile\n"
        "default - Empty Task\n"
        "web [service] - The site\n\n"
    )
