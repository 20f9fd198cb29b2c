"""How `pitstop serve` (without --watch) ends, through the real CLI: a service that cannot
start, exits for good, or crashes past its limit ends serve with that status."""

from __future__ import annotations

from tests.e2e.conftest import Project

TIMEOUT = 60  # a hang fails the test instead of blocking the suite


def test_a_missing_service_program_fails_to_start_not_crash_looped(project: Project) -> None:
    project.makefile(
        """
        [tasks.serve]
        command = "no-such-program-pitstop-test"
        service = { listen = "127.0.0.1:0" }
        """
    )
    result = project.run("serve", timeout=TIMEOUT)
    assert result.returncode == 1, result.stderr
    assert "cannot start no-such-program-pitstop-test" in result.stderr
    assert "failed to start" in result.stderr  # nothing served before: nothing rolled back
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
