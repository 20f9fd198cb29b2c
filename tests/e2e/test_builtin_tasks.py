"""Issue 12, item 1: cargo-make's built-in Rust tasks, through the CLI.

A Makefile.toml that defines no `default` runs cargo-make's `dev-test-flow` (format, build,
test); files may depend on the built-ins; the ones pitstop leaves out say why.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import Project

# cargo-make's dev-test-flow, as `makers --print-steps` orders it (SEMANTICS §4).
DEV_TEST_FLOW = [
    "init",
    "pre-format",
    "install-rustfmt",
    "format",
    "post-format",
    "format-flow",
    "format-toml-conditioned-flow",
    "pre-build",
    "build",
    "post-build",
    "pre-test",
    "test-multi-phases-flow",
    "post-test",
    "test-flow",
    "default",
    "end",
]

CARGO_TOML = """\
[package]
name = "tiny"
version = "0.1.0"
edition = "2021"

[dependencies]
"""

# Deliberately not rustfmt-clean: `cargo fmt` (the format task) rewrites it.
LIB_RS = """\
pub fn add(a: i32,b: i32) -> i32 { a+b }

#[cfg(test)]
mod tests {
    #[test]
    fn adds() { assert_eq!(super::add(2, 2), 4); }
}
"""

needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")


def plan_names(stdout: str) -> list[str]:
    return [line.split(". ", 1)[1].split(" - ")[0] for line in stdout.splitlines() if ". " in line]


def rustfmt_works() -> bool:
    import subprocess

    if shutil.which("rustfmt") is None:
        return False
    done = subprocess.run(["rustfmt", "--help"], capture_output=True, check=False, timeout=60)
    return done.returncode == 0


@needs_cargo
def test_a_file_without_tasks_runs_cargo_make_dev_test_flow(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    target = tmp_path_factory.mktemp("target")
    project.write("Cargo.toml", CARGO_TOML)
    project.write("src/lib.rs", LIB_RS)
    project.makefile('[env]\nGREETING = "no tasks here"\n')
    result = project.run(timeout=600, CARGO_TARGET_DIR=str(target))
    started = [
        line.split("Running Task: ")[1]
        for line in result.stderr.splitlines()
        if "Running Task: " in line
    ]
    if not rustfmt_works():
        # cargo-make would run `rustup component add rustfmt` here; pitstop installs nothing
        # and stops at install-rustfmt, naming what to install.
        assert result.returncode != 0
        assert "rustup component add rustfmt" in result.stderr
        pytest.skip("rustfmt is not installed: format fails as described, build/test not run")
    assert result.returncode == 0, result.stderr
    assert started == ["install-rustfmt", "format", "build", "test-multi-phases-flow", "test"]
    assert "Skipping Task: format-toml-conditioned-flow" in result.stderr
    assert "test tests::adds ... ok" in result.stdout
    assert list((target / "debug").glob("libtiny*.rlib")), "cargo build left no library"
    assert "pub fn add(a: i32, b: i32) -> i32 {" in (project.root / "src/lib.rs").read_text()


def test_default_plan_is_dev_test_flow_and_listing_has_the_built_ins(project: Project) -> None:
    project.makefile('[tasks.hello]\nscript = "echo hello"\n')
    printed = project.run("--print-steps", "--output-format", "short-description")
    assert printed.returncode == 0, printed.stderr
    assert plan_names(printed.stdout) == DEV_TEST_FLOW
    full = project.run("--print-steps")
    assert full.returncode == 0, full.stderr
    listing = project.run("--list-all-steps")
    assert listing.returncode == 0, listing.stderr
    for line in (
        "ci-flow - CI task will run cargo build and cargo test with verbose output",
        "dev-test-flow - Development testing flow will first format the code, and than run "
        "cargo build and test [aliases: default]",
        "clippy - Runs clippy code linter.",
        "check-format - Runs cargo fmt to check appropriate code format.",
        "hello - No Description.",
    ):
        assert line in listing.stdout.splitlines()
    assert "WARN" not in printed.stderr + listing.stderr


def test_files_depending_on_built_ins_plan_without_not_found(project: Project) -> None:
    project.makefile(
        """
        [tasks.pre-build]
        script = "echo before the build"

        [tasks.verify]
        dependencies = ["check-format-flow", "check", "clippy", "test-flow"]

        [tasks.ci]
        dependencies = ["ci-flow", "build-release", "docs", "format-flow"]
        """
    )
    for task in ("verify", "ci", "ci-flow", "check-format", "default"):
        result = project.run("--print-steps", task)
        assert result.returncode == 0, (task, result.stderr)
        assert "not found" not in result.stderr
    plan = plan_names(
        project.run("--print-steps", "--output-format", "short-description", "ci").stdout
    )
    assert plan[plan.index("pre-build") + 1] == "check-format-ci-flow"


def test_skip_core_tasks_leaves_them_out_and_says_so(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.lint]
        dependencies = ["clippy"]
        """
    )
    listing = project.run("--list-all-steps")
    assert "ci-flow" not in listing.stdout
    result = project.run("lint")
    assert result.returncode == 2
    assert 'Task "clippy" not found' in result.stderr
    assert "skip_core_tasks" in result.stderr
    assert "did you mean" not in result.stderr


def test_out_of_scope_built_ins_say_why(project: Project) -> None:
    project.makefile(
        """
        [tasks.members]
        dependencies = ["workspace-ci-flow"]

        [tasks.sudo]
        dependencies = ["setup-sudo-env"]
        """
    )
    members = project.run("members")
    assert members.returncode == 2
    assert "one of cargo-make's built-in tasks, which pitstop does not provide" in members.stderr
    assert "workspace" in members.stderr and "did you mean" not in members.stderr
    sudo = project.run("sudo")
    assert sudo.returncode == 2
    assert "duckscript" in sudo.stderr and "did you mean" not in sudo.stderr
    # Found deep inside the built-ins: the message shows the way there from what was asked.
    flow = project.run("build-flow")
    assert flow.returncode == 2
    assert "(via build-flow -> docs-flow -> readme-set-crate-version-conditioned)" in flow.stderr


@needs_cargo
def test_a_missing_cargo_subcommand_names_the_crate(project: Project) -> None:
    project.makefile(
        """
        [tasks.lint]
        command = "cargo"
        args = ["pitstop-no-such-plugin", "--all"]
        """
    )
    result = project.run("lint")
    assert result.returncode != 0
    assert "`cargo pitstop-no-such-plugin` is not installed" in result.stderr
    assert "cargo install cargo-pitstop-no-such-plugin" in result.stderr


def test_a_missing_install_crate_binary_names_the_crate(project: Project) -> None:
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.docs]
        install_crate = { crate_name = "pitstop-fake-tool", binary = "pitstop-fake-tool", test_arg = "--help" }
        command = "pitstop-fake-tool"
        """
    )
    result = project.run("docs")
    assert result.returncode != 0
    assert "`pitstop-fake-tool` is not installed" in result.stderr
    assert "cargo install pitstop-fake-tool" in result.stderr
    assert "WARN" not in result.stderr


def test_a_user_default_that_only_extends_the_alias_is_warned_about(project: Project) -> None:
    project.makefile(
        """
        [tasks.default]
        dependencies = ["mine"]

        [tasks.mine]
        script = "echo mine"
        """
    )
    result = project.run("--print-steps", "--output-format", "short-description")
    assert result.returncode == 0, result.stderr
    # As in cargo-make, the built-in default's alias wins over the user's dependencies.
    assert plan_names(result.stdout) == DEV_TEST_FLOW
    assert "Makefile.toml:2" in result.stderr and "clear = true" in result.stderr
    project.makefile(
        """
        [tasks.default]
        clear = true
        dependencies = ["mine"]

        [tasks.mine]
        script = "echo mine"
        """
    )
    cleared = project.run("--print-steps", "--output-format", "short-description")
    assert plan_names(cleared.stdout) == ["init", "mine", "default", "end"]
    assert "WARN" not in cleared.stderr


def test_pitstop_toml_loads_the_rust_tasks_only_when_asked(project: Project) -> None:
    project.write("pitstop.toml", '[tasks.build]\nscript = "echo own build"\n')
    assert "ci-flow" not in project.run("--list-all-steps").stdout
    assert project.run("build").stdout.strip() == "own build"
    project.write(
        "pitstop.toml", "[config]\nskip_core_tasks = false\n[tasks.hello]\nscript = 'echo'\n"
    )
    assert "ci-flow" in project.run("--list-all-steps").stdout


def test_core_tasks_load_even_when_the_cache_folder_is_unwritable(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cache = tmp_path_factory.mktemp("cache")
    blocker = cache / "pitstop"
    blocker.write_text("a file where the cache folder would go")
    project.makefile('[tasks.hello]\nscript = "echo hello"\n')
    for _ in range(2):
        result = project.run("--print-steps", "ci-flow", XDG_CACHE_HOME=str(cache))
        assert result.returncode == 0, result.stderr
        assert "print-env-flow" in result.stdout
    fresh = tmp_path_factory.mktemp("fresh")
    assert project.run("--print-steps", XDG_CACHE_HOME=str(fresh)).returncode == 0
    assert list(Path(fresh, "pitstop").glob("core-tasks-*.pickle"))
    warm = project.run(
        "--print-steps", "--output-format", "short-description", XDG_CACHE_HOME=str(fresh)
    )
    assert plan_names(warm.stdout) == DEV_TEST_FLOW


def test_a_task_laid_over_a_built_in_with_another_action_says_clear(project: Project) -> None:
    project.makefile('[tasks.build]\nscript = "echo my build"\n')
    result = project.run("build")
    assert result.returncode == 2
    assert "contains multiple actions (command and script)" in result.stderr
    assert "rust.toml" in result.stderr and "add clear = true" in result.stderr
    project.makefile('[tasks.build]\nclear = true\nscript = "echo my build"\n')
    assert project.run("build").stdout.strip() == "my build"


def test_modify_core_tasks_namespaces_and_hides_the_built_ins(project: Project) -> None:
    project.makefile(
        """
        [config]
        modify_core_tasks = { private = true, namespace = "default" }

        [tasks.default]
        dependencies = ["default::install-rustfmt", "default::check-format", "default::test-flow"]
        """
    )
    result = project.run("--print-steps", "--output-format", "short-description")
    assert result.returncode == 0, result.stderr
    assert plan_names(result.stdout) == [
        "init",
        "default::install-rustfmt",
        "default::check-format",
        "default::pre-test",
        "default::test-multi-phases-flow",
        "default::post-test",
        "default::test-flow",
        "default",
        "end",
    ]
    assert "WARN" not in result.stderr
    # private = true: the built-ins are not listed and cannot be run directly.
    assert "ci-flow" not in project.run("--list-all-steps").stdout
    assert project.run("default::ci-flow").returncode == 2


@pytest.mark.skipif(shutil.which("rustc") is None, reason="rustc is not installed")
def test_channels_conditions_are_checked_against_rustc(project: Project) -> None:
    import subprocess

    version = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=True)
    words = version.stdout.split()[1]
    channel = "nightly" if "nightly" in words else "beta" if "beta" in words else "stable"
    other = "nightly" if channel != "nightly" else "stable"
    project.makefile(
        f"""
        [config]
        skip_core_tasks = true

        [tasks.default]
        dependencies = ["mine", "other"]

        [tasks.mine]
        condition = {{ channels = ["{channel}"] }}
        script = "echo on {channel}"

        [tasks.other]
        condition = {{ channels = ["{other}"] }}
        script = "echo on {other}"
        """
    )
    result = project.run()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["on", channel]
    assert "Skipping Task: other" in result.stderr
    assert "WARN" not in result.stderr


def test_toolchain_runs_the_command_through_rustup(project: Project) -> None:
    bin_dir = project.root / "fakebin"
    bin_dir.mkdir()
    fake = bin_dir / "rustup"
    fake.write_text('#!/bin/sh\necho "rustup $*"\n')
    fake.chmod(0o755)
    project.makefile(
        """
        [config]
        skip_core_tasks = true

        [tasks.fmt-nightly]
        toolchain = "nightly"
        command = "cargo"
        args = ["--version"]
        """
    )
    import os

    result = project.run("fmt-nightly", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "rustup run nightly cargo --version"
    assert "WARN" not in result.stderr
