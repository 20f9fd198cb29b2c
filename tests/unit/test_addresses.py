"""`listen` and `proxy` addresses as a service table writes them."""

from __future__ import annotations

import pytest

from pitstop.taskfile.addresses import AddressError, ListenAddress, parse_listen


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ListenAddress("tcp", "127.0.0.1", 8080)),
        ("[::1]:8080", ListenAddress("tcp", "::1", 8080)),
        ("localhost:8080", ListenAddress("tcp", "127.0.0.1", 8080)),
        (":8080", ListenAddress("tcp", "127.0.0.1", 8080)),
        ("8080", ListenAddress("tcp", "127.0.0.1", 8080)),
        (8080, ListenAddress("tcp", "127.0.0.1", 8080)),
        ("/tmp/x.sock", ListenAddress("unix", path="/tmp/x.sock")),
        ("unix:/tmp/x.sock", ListenAddress("unix", path="/tmp/x.sock")),
    ],
)
def test_parse_listen(text: str | int, expected: ListenAddress) -> None:
    assert parse_listen(text) == expected


def test_str_round_trips() -> None:
    for text in ("127.0.0.1:80", "[::1]:80", "unix:/tmp/a.sock"):
        assert str(parse_listen(text)) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nohost", "HOST:PORT"),
        ("1.2.3.4:99999", "0 to 65535"),
        ("::1:80", "brackets"),
        ("[::1]80", "[::1]:8080"),
        ("unix:", "needs a path"),
    ],
)
def test_a_bad_address_says_what_to_write(text: str, reason: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_listen(text)
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{text!r}: ")
