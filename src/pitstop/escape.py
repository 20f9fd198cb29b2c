"""Untrusted text made safe to print on a terminal.

File names, text quoted from a task file and values a proxy client sent can hold terminal
control sequences: ESC ] 0 ; ... BEL retitles the terminal window, ESC [ 31 m colours
everything after it, a carriage return overwrites the start of the line. Printed raw, a
file name chosen by someone else could rewrite what pitstop seems to say. `escape` shows
such characters as Python-style escapes instead. A task's own output is not escaped: it is
the user's program, and its colours are wanted.
"""

from __future__ import annotations

import re

# C0 controls except tab (harmless, and common in quoted source lines), DEL, C1 controls
# (0x9b is a one-byte CSI), the Unicode bidi controls that reorder how a line reads
# ("Trojan Source"), and lone surrogates (bytes of a file name that are not UTF-8).
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r"}


def escape(text: str) -> str:
    """`text` with its control characters shown as escapes (ESC as `\\x1b`), not sent raw."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"
