"""`pitstop serve` edge cases found in review: each runs the real CLI in a temp dir."""

from __future__ import annotations

import socket

from tests.e2e.conftest import Project

TIMEOUT = 60  # a hang fails the test instead of blocking the suite


def test_a_missing_service_program_is_rolled_back_not_crash_looped(project: Project) -> None:
    project.makefile(
        """
        [tasks.serve]
        command = "no-such-program-pitstop-review"
        service = { listen = "127.0.0.1:0" }
        """
    )
    result = project.run("serve", timeout=TIMEOUT)
    assert result.returncode == 1, result.stderr
    assert "cannot start no-such-program-pitstop-review" in result.stderr
    assert "rolled back" in result.stderr
    assert "restarting" not in result.stderr


def test_serve_without_watch_ends_when_the_service_exits_for_good(project: Project) -> None:
    project.makefile(
        """
        [tasks.serve]
        script = "exit 3"
        service = { listen = "127.0.0.1:0", restart = "never" }

        [tasks.clean]
        command = "true"
        service = { listen = "127.0.0.1:0" }
        """
    )
    failed = project.run("serve", timeout=TIMEOUT)
    assert failed.returncode == 3, failed.stderr
    clean = project.run("clean", timeout=TIMEOUT)
    assert clean.returncode == 0, clean.stderr


def test_serve_without_watch_ends_after_giving_up_on_crashes(project: Project) -> None:
    project.makefile(
        """
        [tasks.serve]
        script = "exit 4"
        service = { listen = "127.0.0.1:0", restart_backoff = "1ms", max_crashes = 2 }
        """
    )
    result = project.run("serve", timeout=TIMEOUT)
    assert result.returncode == 4, result.stderr
    assert "not restarting" in result.stderr


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
            assert "Address already in use" in result.stderr
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
    assert "db, which is a service too" in result.stderr
    assert "Makefile.toml:5" in result.stderr
