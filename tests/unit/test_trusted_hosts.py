"""The Host names a server answers (``api.trusted_hosts``): table-driven."""

from __future__ import annotations

import socket

import pytest

from baepo.api.trusted_hosts import names_of

LOOPBACK = names_of("127.0.0.1", 7070)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:7070", True),
        ("localhost:7070", True),
        ("LOCALHOST:7070", True),
        ("[::1]:7070", True),
        ("127.0.0.1", False),  # port 80 implied: another server
        ("127.0.0.1:7071", False),
        ("localhost.attacker.example:7070", False),
        ("attacker.example:7070", False),  # DNS rebinding: a name pointed at 127.0.0.1
        ("attacker.example", False),
        ("", False),
        ("[::1]", False),
    ],
)
def test_a_loopback_server_answers_its_loopback_names_with_its_port(
    host: str, allowed: bool
) -> None:
    assert LOOPBACK.allows(host) is allowed


def test_port_80_may_be_left_out() -> None:
    assert names_of("127.0.0.1", 80).allows("localhost")
    assert names_of("::1", 80).allows("[::1]")


def test_public_names_with_and_without_a_port() -> None:
    names = names_of("10.0.0.5", 7070, ["baepo.example.com", "ops.example.com:8443", "[fd00::1]"])
    assert names.allows("10.0.0.5:7070")
    assert not names.allows("localhost:7070")  # not listening on loopback
    assert names.allows("baepo.example.com") and names.allows("baepo.example.com:443")
    assert names.allows("ops.example.com:8443") and not names.allows("ops.example.com:7070")
    assert names.allows("[fd00::1]:7070") and names.allows("[fd00::1]")
    assert not names.allows("other.example.com:7070")


def test_every_address_takes_the_machines_names_and_a_star_takes_any() -> None:
    wildcard = names_of("0.0.0.0", 7070)
    assert wildcard.allows(f"{socket.gethostname()}:7070")
    assert wildcard.allows("127.0.0.1:7070")
    assert not wildcard.allows("attacker.example:7070")
    assert names_of("0.0.0.0", 7070, ["*"]).allows("anything.example:1")
