"""A mistake in a service's set-up is one clear message at its line, exit code 2, no
traceback: an address in use, a service or a plain task depending on a service."""

from __future__ import annotations

import socket

from tests.e2e.conftest import Project

TIMEOUT = 60  # a hang fails the test instead of blocking the suite


def test_an_address_in_use_is_a_clear_error(project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        project.makefile(
            f"""
            [tasks.serve]
            command = "sleep"
            args = ["100"]
            service = {{ listen = "127.0.0.1:{port}" }}

            [tasks.proxied]
            command = "sleep"
            args = ["100"]
            service = {{ proxy = "127.0.0.1:{port}" }}
            """
        )
        for task, line in (("serve", 5), ("proxied", 10)):
            result = project.run(task, timeout=TIMEOUT)
            assert result.returncode == 2, result.stderr
            assert "Traceback" not in result.stderr
            assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
            assert f"Makefile.toml:{line}" in result.stderr


def test_a_service_depending_on_a_service_is_refused(project: Project) -> None:
    project.makefile(
        """
        [tasks.db]
        command = "sleep"
        args = ["100"]
        service = { listen = "127.0.0.1:0" }

        [tasks.serve]
        dependencies = ["db"]
        command = "sleep"
        args = ["100"]
        service = { listen = "127.0.0.1:0" }
        """
    )
    result = project.run("serve", timeout=TIMEOUT)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert '"db", which is a service too' in result.stderr
    assert "Makefile.toml:5" in result.stderr


def test_a_plain_task_cannot_depend_on_a_service(project: Project) -> None:
    project.makefile(
        """
        [tasks.both]
        dependencies = ["api"]
        script = "echo never"

        [tasks.api]
        command = "python3"
        args = ["-m", "http.server"]
        service = { proxy = "127.0.0.1:0" }
        """
    )
    result = project.run("both")
    assert result.returncode == 2
    assert "Makefile.toml:9" in result.stderr
    assert "Traceback" not in result.stderr
    assert "never" not in result.stdout
