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


def test_a_proxied_app_that_ignores_port_is_told_which_port_it_was_given(
    project: Project,
) -> None:
    # The newcomer's first proxy mistake: an app that binds its own default port (here it
    # binds nothing at all) instead of $PORT. The message names the port it was given.
    project.makefile(
        """
        [tasks.serve]
        command = "sleep"
        args = ["30"]
        service = { proxy = "127.0.0.1:0", ready_timeout = "1s", stop_timeout = "1s" }
        """
    )
    result = project.run("serve", timeout=TIMEOUT)
    assert result.returncode == 1, result.stderr
    assert "failed to start: not ready after 1s (it gets HOST=127.0.0.1 PORT=" in result.stderr
    assert "does it listen there?" in result.stderr
