"""`check`, `artifacts` and `pitstop rollback` through the real CLI: broken keys fail at load
time with exit 2 at their own line and column; `pitstop rollback SERVICE 1` asks the daemon
over its control socket and the first kept build answers again under load, without a build."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.conftest import Project
from tests.e2e.test_service_table_cli import position
from tests.helpers import collect_lines, free_port, pid_alive, try_get, wait_until
from tests.load import Load

APP = Path(__file__).resolve().parents[1] / "apps" / "fd_app.py"

BROKEN = {
    "check not a list": (
        'check = "curl -fsS $PITSTOP_CANDIDATE_URL/health"',
        "check",
        ["service.check must be a list of shell commands"],
    ),
    "check entry not a string": (
        'check = ["pytest -q", 3]',
        "3",
        ["service.check[1] must be a shell command (found 3)"],
    ),
    "keep_builds zero": (
        "keep_builds = 0",
        "keep_builds",
        ["service.keep_builds must be a whole number of at least 1 (found 0)"],
    ),
    "keep_builds not a number": (
        'keep_builds = "three"',
        "keep_builds",
        ["service.keep_builds must be a whole number", "'three'"],
    ),
    "bad check_timeout": (
        'check_timeout = "soon"',
        "check_timeout",
        ["service.check_timeout must be a duration"],
    ),
    "artifacts not a list": (
        'artifacts = "target/debug/app"',
        "artifacts",
        ["service.artifacts must be a list of paths or globs"],
    ),
    "artifact outside the folder": (
        'artifacts = ["../elsewhere/app"]',
        '"../elsewhere/app"',
        ["service.artifacts[0] must stay inside the task's folder"],
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_list_fails_at_the_broken_check_or_artifacts_key(project: Project, name: str) -> None:
    line_text, needle, words = BROKEN[name]
    text = f"""
        [tasks.web]
        command = "serve"

        [tasks.web.service]
        listen = "127.0.0.1:8080"
        {line_text}
        """
    project.makefile(text)
    line, col = position(textwrap.dedent(text), needle)

    result = project.run("--list")

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"  --> Makefile.toml:{line}:{col}\n" in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr


TASKFILE = """
[tasks.build]
script = '''
echo run >> builds.log
cp source.txt version.txt
'''

[tasks.api]
dependencies = ["build"]
command = "{python}"
args = ["{app}", "${{PITSTOP_ARTIFACTS}}/version.txt"]
[tasks.api.service]
listen = "127.0.0.1:{port}"
ready = {{ notify = true }}
artifacts = ["version.txt"]
keep_builds = 4
"""


def test_rollback_verb_brings_the_first_build_back_under_load(
    project: Project, tmp_path: Path
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    port = free_port()
    project.write("source.txt", "v1\n")
    project.write("pitstop.toml", TASKFILE.format(python=sys.executable, app=APP, port=port))

    def run(*args: str) -> str:
        result = project.run(*args, XDG_RUNTIME_DIR=str(runtime))
        assert result.returncode == 0, result.stderr + result.stdout
        return result.stdout

    def builds() -> int:
        return len((project.root / "builds.log").read_text().splitlines())

    run("up", "-d", "--no-watch")
    try:
        with Load.new_connections(("127.0.0.1", port), clients=2) as load:
            load.wait_to_see("v1")
            for n in (2, 3, 4):
                project.write("source.txt", f"v{n}\n")
                run("restart", "api")
                load.wait_to_see(f"v{n}")
            ran = builds()
            assert run("rollback", "api", "1") == "api: #1 serves again (no build)\n"
            load.wait_to_see("v1")
            load.wait_for_more(30)
            assert load.bodies[-1] == "v1"
        assert load.failures == []
        assert builds() == ran

        # A version that is not kept is refused, naming the kept ones.
        refused = project.run("rollback", "api", "9", XDG_RUNTIME_DIR=str(runtime))
        assert refused.returncode == 2, refused.stderr
        assert "no kept build #9 (kept: #1, #2, #3, #4)" in refused.stderr
        assert "Traceback" not in refused.stderr
    finally:
        pid_file = project.root / ".pitstop" / "daemon.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        project.run("down", XDG_RUNTIME_DIR=str(runtime))
        if pid is not None and pid_alive(pid):  # the test failed half-way
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not pid_alive(pid), 10, "the daemon gone")


SERVE_TASKFILE = """
[tasks.build]
script = "cp source.txt version.txt"

[tasks.serve]
dependencies = ["build"]
command = "{python}"
args = ["{app}", "${{PITSTOP_ARTIFACTS}}/version.txt"]
watch = {{ watch = ["source.txt"] }}
[tasks.serve.service]
listen = "127.0.0.1:{port}"
ready = {{ notify = true }}
artifacts = ["version.txt"]
check = ["{python} -c \\"import os,sys,urllib.request as u; b=u.urlopen(os.environ['PITSTOP_CANDIDATE_URL']).read(); print('candidate says', b.decode()); sys.exit(b'bad' in b)\\""]
"""


def test_serve_checks_each_version_and_prints_why_one_was_rolled_back(project: Project) -> None:
    port = free_port()
    project.write("source.txt", "v1\n")
    project.write("pitstop.toml", SERVE_TASKFILE.format(python=sys.executable, app=APP, port=port))
    proc = project.popen("--watch", "serve")
    assert proc.stderr is not None
    stderr = collect_lines(proc.stderr)
    try:
        wait_until(lambda: try_get(port) == "v1", timeout=30)
        kept = project.root / ".pitstop" / "builds" / "serve"
        assert (kept / "1" / "version.txt").read_text() == "v1\n"
        with Load.new_connections(("127.0.0.1", port)) as load:
            # Repeated: the first write may land before the watcher is set up.
            def rolled_back() -> bool:
                if any("rolled back" in line for line in stderr):
                    return True
                project.write("source.txt", "v2-bad\n")
                return False

            wait_until(rolled_back, timeout=30, interval=0.3)
            load.wait_for_more(20)
            assert not load.saw("bad")
        assert load.failures == []
        text = "".join(stderr)
        assert "check of #2 `" in text and "failed with status 1:" in text, text
        assert "    candidate says v2-bad" in text
        assert "instance #2 rolled back: check `" in text and "#1 keeps serving" in text
        assert try_get(port) == "v1"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0, "".join(stderr)
