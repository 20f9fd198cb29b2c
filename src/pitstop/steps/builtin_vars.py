"""cargo-make's built-in variables: the general `CARGO_MAKE_*` set (§6.1) and a step's own."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

from pitstop.errors import Location
from pitstop.steps.env import LIST_SEPARATOR

# ci_info: the generic markers, then (vendor name, variable that reveals it).
_CI_MARKERS = ("CI", "CONTINUOUS_INTEGRATION", "BUILD_NUMBER", "RUN_ID")
_CI_VENDORS = (
    ("GitHub Actions", "GITHUB_ACTIONS"),
    ("GitLab CI", "GITLAB_CI"),
    ("Travis CI", "TRAVIS"),
    ("CircleCI", "CIRCLECI"),
    ("AppVeyor", "APPVEYOR"),
    ("Azure Pipelines", "TF_BUILD"),
    ("Bitbucket Pipelines", "BITBUCKET_COMMIT"),
    ("Buildkite", "BUILDKITE"),
    ("Drone", "DRONE"),
    ("Jenkins", "JENKINS_URL"),
    ("TeamCity", "TEAMCITY_VERSION"),
    ("AWS CodeBuild", "CODEBUILD_BUILD_ARN"),
    ("Woodpecker", "CI_PIPELINE_NUMBER"),
)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def ci_vendor(env: Mapping[str, str]) -> str | None:
    return next((name for name, var in _CI_VENDORS if var in env), None)


def is_ci(env: Mapping[str, str]) -> bool:
    """Whether this looks like a CI run, the way the `ci_info` crate decides it."""
    if env.get("CI", "").lower() == "false":
        return False
    return any(var in env for var in _CI_MARKERS) or ci_vendor(env) is not None


# Variables whose non-empty value means "this build is for a pull/merge request".
_PR_MARKERS = (
    "CI_MERGE_REQUEST_ID",
    "CIRCLE_PULL_REQUEST",
    "SYSTEM_PULLREQUEST_PULLREQUESTID",
    "BITBUCKET_PR_ID",
    "DRONE_PULL_REQUEST",
)


def is_pr(env: Mapping[str, str]) -> bool:
    """Whether the CI build is for a pull request (a subset of `ci_info`'s vendor rules)."""
    if env.get("GITHUB_EVENT_NAME", "").startswith("pull_request"):
        return True
    # Travis and Buildkite write "false" when it is not a pull request.
    for var in ("TRAVIS_PULL_REQUEST", "BUILDKITE_PULL_REQUEST"):
        if env.get(var, "false") not in ("", "false"):
            return True
    return any(env.get(var) for var in _PR_MARKERS)


def ci_branch(env: Mapping[str, str]) -> str | None:
    for var in (
        "GITHUB_HEAD_REF",
        "CI_COMMIT_REF_NAME",
        "TRAVIS_BRANCH",
        "CIRCLE_BRANCH",
        "BITBUCKET_BRANCH",
        "BUILDKITE_BRANCH",
        "DRONE_BRANCH",
        "BRANCH_NAME",
    ):
        if env.get(var):
            return env[var]
    ref = env.get("GITHUB_REF", "")
    return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None


def builtin_env(
    *,
    task: str,
    task_args: Sequence[str],
    cwd: Path,
    makefile: Path,
    profile: str,
    additional_profiles: Sequence[str] = (),
    base_env: Mapping[str, str],
    command: str = "pitstop",
) -> dict[str, str]:
    """The general `CARGO_MAKE_*` variables (§6.1), to be merged into the run's env.

    `base_env` is consulted for CI detection and for an inherited
    `CARGO_MAKE_WORKSPACE_WORKING_DIRECTORY` (which cargo-make does not override). The
    `CARGO_MAKE_GIT_*` ones are not among them: they come from `gitinfo.git_env`, which
    reads files and so runs in a worker thread (see `envsetup`).
    """
    cwd = cwd.resolve()
    out = {
        "CARGO_MAKE": "true",
        "CARGO_MAKE_TASK": task,
        "CARGO_MAKE_COMMAND": command,
        "CARGO_MAKE_TASK_ARGS": LIST_SEPARATOR.join(task_args),
        "CARGO_MAKE_WORKING_DIRECTORY": str(cwd),
        "CARGO_MAKE_WORKSPACE_WORKING_DIRECTORY": base_env.get(
            "CARGO_MAKE_WORKSPACE_WORKING_DIRECTORY", str(cwd)
        ),
        "CARGO_MAKE_PROFILE": profile,
        "CARGO_MAKE_ADDITIONAL_PROFILES": LIST_SEPARATOR.join(additional_profiles),
        "CARGO_MAKE_MAKEFILE_PATH": str(makefile.resolve()),
        "CARGO_MAKE_CI": _bool(is_ci(base_env)),
        "CARGO_MAKE_PR": _bool(is_pr(base_env)),
        "CARGO_MAKE_PROJECT_NAME": cwd.name,
    }
    vendor, branch = ci_vendor(base_env), ci_branch(base_env)
    if vendor is not None:
        out["CARGO_MAKE_CI_VENDOR"] = vendor
    if branch is not None:
        out["CARGO_MAKE_CI_BRANCH_NAME"] = branch
    return out


def task_env(step_name: str, task_location: Location) -> dict[str, str]:
    """`CARGO_MAKE_CURRENT_TASK_*` for a step: set before its condition is checked (§5 step 3)."""
    makefile, folder = _makefile_strings(task_location.path)
    return {
        "CARGO_MAKE_CURRENT_TASK_NAME": step_name,
        "CARGO_MAKE_CURRENT_TASK_INITIAL_MAKEFILE": makefile,
        "CARGO_MAKE_CURRENT_TASK_INITIAL_MAKEFILE_DIRECTORY": folder,
    }


@functools.lru_cache(maxsize=64)
def _makefile_strings(path: Path) -> tuple[str, str]:
    """A task file's resolved path and folder: once per file, not once per step (resolving
    costs a system call per path component)."""
    makefile = path.resolve()
    return str(makefile), str(makefile.parent)
