"""escape(): untrusted text shows its control characters instead of sending them."""

from __future__ import annotations

import os

import pytest

from pitstop.escape import escape


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("src/app.py", "src/app.py"),
        ("é ü 日本 😀 tab\there", "é ü 日本 😀 tab\there"),
        ("a\x1b]0;pwned\x07b", "a\\x1b]0;pwned\\x07b"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("over\rwrite", "over\\rwrite"),
        ("two\nlines", "two\\nlines"),
        ("del\x7f nul\x00", "del\\x7f nul\\x00"),
        ("c1 csi \x9b31m", "c1 csi \\x9b31m"),
        ("bidi \u202eevil", "bidi \\u202eevil"),
    ],
)
def test_control_characters_are_shown_as_escapes(raw: str, shown: str) -> None:
    assert escape(raw) == shown


def test_an_undecodable_byte_of_a_file_name_is_shown_as_that_byte() -> None:
    name = os.fsdecode(b"caf\xe9.txt")  # Latin-1, not UTF-8: a lone surrogate in str
    assert escape(name) == "caf\\xe9.txt"
    escape(name).encode("utf-8")  # printable on a strict UTF-8 stream


def test_nothing_unsafe_is_left_in_any_escaped_character() -> None:
    everything = "".join(map(chr, range(0x3000))) + "\udcff"
    shown = escape(everything)
    assert not any((ord(c) < 0x20 and c != "\t") or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert "\x1b" not in shown
