"""`cli._parse_switches`, the argparse-free reading of plain argvs, gives what argparse gives."""

from __future__ import annotations

import argparse
import itertools
import random
import subprocess
import sys

import pytest

from pitstop import cli
from pitstop.request import UserRequest

SPELLINGS = sorted(cli._SWITCHES)
TASKS = ["build", "x-y", "a=b", "a b", "ü", "default", "ps", "up", "logs", "-1", "", "--"]
DECLINED = [
    ["--lis"],  # an abbreviation: argparse expands it
    ["-lq"],  # joined short flags
    ["--list=1"],
    ["-h"],
    ["--version"],
    ["-f", "other.toml", "--list"],
    ["--list", "--"],
    ["--watch", "--", "pytest"],
    ["build", "--release"],
    ["build", "-q"],
    ["--list", "build", "x"],
    ["up"],
    ["ps", "--json"],
    ["logs"],
    ["-1"],
    [""],
    ["--no-such-flag"],
    ["-e", "A=1", "build"],
]


def by_argparse(argv: list[str]) -> dict[str, object]:
    return vars(cli.build_parser().parse_args(argv))


def request_by_argparse(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> UserRequest:
    with monkeypatch.context() as patch:
        patch.setattr(cli, "_parse_switches", lambda _argv: None)
        return cli.parse_request(argv)


def argvs() -> list[list[str]]:
    found: list[list[str]] = [[]]
    found += [[flag] for flag in SPELLINGS]
    found += [list(pair) for pair in itertools.product(SPELLINGS, repeat=2)]
    found += [[task] for task in TASKS]
    found += [[flag, task] for flag in SPELLINGS for task in TASKS]
    found += DECLINED
    rng = random.Random(13)
    words = [*SPELLINGS, *TASKS, "--lis", "-lq", "-f", "x.toml", "-j", "2", "--cwd"]
    found += [rng.choices(words, k=rng.randint(2, 6)) for _ in range(300)]
    return found


def test_the_defaults_are_argparse_defaults() -> None:
    values = dict(cli._DEFAULTS, task=None)
    values.update((name, []) for name in cli._LIST_DEFAULTS)
    assert values == by_argparse([])


def test_the_switches_are_every_store_true_flag() -> None:
    switches = {
        option: action.dest
        for action in cli.build_parser()._actions
        if isinstance(action, argparse._StoreTrueAction)
        for option in action.option_strings
    }
    assert switches == cli._SWITCHES


def test_every_argv_it_reads_parses_as_argparse_parses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    read = 0
    for argv in argvs():
        fast = cli._parse_switches(argv)
        if fast is None:
            continue
        read += 1
        assert vars(fast) == by_argparse(argv), argv
        assert cli.parse_request(argv) == request_by_argparse(argv, monkeypatch), argv
    assert read > 900  # the generator does reach the fast path


@pytest.mark.parametrize("argv", DECLINED, ids=" ".join)
def test_anything_else_goes_to_argparse(argv: list[str]) -> None:
    assert cli._parse_switches(argv) is None


def test_each_parse_gets_its_own_lists() -> None:
    first = cli._parse_switches(["--list"])
    second = cli._parse_switches(["--list"])
    assert first is not None and second is not None
    first.env.append("A=1")
    assert second.env == [] and cli._DEFAULTS.get("env") is None


def test_list_does_not_import_argparse() -> None:
    code = (
        "import sys; from pitstop.cli import parse_request; "
        "parse_request(['--list', '-q']); parse_request(['build']); "
        "print('argparse' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
