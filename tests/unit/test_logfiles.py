"""Per-service log files: stamped lines, rotation by size, a tail interleaved by time."""

from __future__ import annotations

from pathlib import Path

from pitstop.manager.logfiles import LogBook, LogLine, file_name, tail


def _tail(book: LogBook, names: list[str], n: int) -> list[LogLine]:
    return tail(book.folder, book.snapshot(names), n)


def test_tail_interleaves_services_by_time(tmp_path: Path) -> None:
    book = LogBook(tmp_path)
    for i in range(5):
        book.write("api", "stdout", f"api {i}", now=1000.0 + 2 * i)
        book.write("web", "stderr", f"web {i}", now=1001.0 + 2 * i)
    lines = _tail(book, ["api", "web"], 4)
    assert [line.text for line in lines] == ["api 3", "web 3", "api 4", "web 4"]
    assert [line.stream for line in lines] == ["out", "err", "out", "err"]
    assert [line.text for line in _tail(book, ["web"], 2)] == ["web 3", "web 4"]
    book.close()


def test_rotation_bounds_the_files_and_the_tail_reaches_into_the_rotated_one(
    tmp_path: Path,
) -> None:
    book = LogBook(tmp_path, max_bytes=4096)
    for i in range(1000):
        book.write("api", "stdout", f"line {i:04d}")
    current = tmp_path / "api.log"
    rotated = tmp_path / "api.log.1"
    assert current.stat().st_size <= 4096 and rotated.stat().st_size <= 4096
    current_lines = len(current.read_text().splitlines())
    lines = _tail(book, ["api"], current_lines + 3)
    assert [line.text for line in lines][-1] == "line 0999"
    assert len(lines) == current_lines + 3
    texts = [line.text for line in lines]
    assert texts == sorted(texts)  # in order across the two files
    book.close()


def test_a_line_stays_one_line_and_long_ones_are_cut(tmp_path: Path) -> None:
    book = LogBook(tmp_path)
    book.write("api", "stdout", "two\nlines")
    book.write("api", "stdout", "x" * 100_000)
    lines = _tail(book, ["api"], 10)
    assert lines[0].text == "two\\nlines"
    assert lines[1].text.endswith(" [cut]") and len(lines[1].text) < 20_000
    book.close()


def test_followers_get_lines_written_after_the_snapshot(tmp_path: Path) -> None:
    book = LogBook(tmp_path)
    book.write("api", "stdout", "old")
    seen: list[str] = []
    unfollow = book.follow(lambda line: seen.append(line.text))
    snapshot = book.snapshot(["api"])
    book.write("api", "stdout", "new")
    assert [line.text for line in tail(tmp_path, snapshot, 10)] == ["old"]
    assert seen == ["new"]
    unfollow()
    book.write("api", "stdout", "after")
    assert seen == ["new"]
    book.close()


def test_odd_service_names_make_safe_file_names() -> None:
    assert file_name("api") == "api.log"
    assert "/" not in file_name("../etc/passwd")
    assert file_name("../x").startswith("x-")
