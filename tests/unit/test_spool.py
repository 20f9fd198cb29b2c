"""The spool behind `--output group`: every line back, in order, from memory or from its file."""

from __future__ import annotations

import os
import tempfile

from pitstop.engine.spool import Spool


def _lines(count: int) -> list[tuple[str, str]]:
    return [("stderr" if i % 7 == 0 else "stdout", f"line {i} é \r tab\t") for i in range(count)]


def test_small_output_stays_in_memory_and_comes_back_in_order() -> None:
    with Spool(memory_limit=1 << 20) as spool:
        for stream, line in _lines(50):
            spool.append(stream, line)  # type: ignore[arg-type]
        assert not spool.on_disk
        assert list(spool.replay()) == _lines(50)


def test_output_past_the_limit_moves_to_a_file_without_losing_or_reordering_a_line() -> None:
    with Spool(memory_limit=4096) as spool:
        for stream, line in _lines(5000):
            spool.append(stream, line)  # type: ignore[arg-type]
        assert spool.on_disk
        assert list(spool.replay()) == _lines(5000)


def test_any_character_survives_the_file_even_a_lone_surrogate_and_empty_lines() -> None:
    odd = [
        ("stdout", ""),
        ("stderr", "\x00\n\x1b[31m"),
        ("stdout", "\udc80 and 😀"),
        ("stdout", ""),
    ]
    with Spool(memory_limit=0) as spool:
        for stream, line in odd:
            spool.append(stream, line)  # type: ignore[arg-type]
        assert spool.on_disk
        assert list(spool.replay()) == odd


def test_lines_added_after_a_partial_replay_go_to_the_end() -> None:
    with Spool(memory_limit=0) as spool:
        spool.append("stdout", "a")
        spool.append("stdout", "b")
        replay = spool.replay()
        assert next(replay) == ("stdout", "a")
        replay.close()
        spool.append("stdout", "c")
        assert [line for _, line in spool.replay()] == ["a", "b", "c"]


def test_the_file_has_no_name_left_in_the_temporary_folder() -> None:
    before = set(os.listdir(tempfile.gettempdir()))
    with Spool(memory_limit=0) as spool:
        spool.append("stdout", "x")
        assert spool.on_disk
        after = set(os.listdir(tempfile.gettempdir()))
        assert not {name for name in after - before if name.startswith("pitstop-output-")}
