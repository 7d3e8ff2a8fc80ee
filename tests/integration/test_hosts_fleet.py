"""The test fleet itself: every namespace host answers SSH with the generated key, has its own
address and its own /srv."""

from __future__ import annotations

import asyncio

import asyncssh
from fleet import Fleet, fleet

__all__ = ["fleet"]


async def _run(address: str, key: str, command: str) -> str:
    async with asyncssh.connect(
        address, username="root", client_keys=[key], known_hosts=None
    ) as conn:
        done = await conn.run(command, check=True, timeout=20)
        return str(done.stdout)


def test_ssh_into_each_host(fleet: Fleet) -> None:
    async def main() -> list[str]:
        return await asyncio.gather(
            *(
                _run(a, str(fleet.key), f"hostname -I; echo {a} > /srv/who; cat /srv/who")
                for a in fleet.addresses
            )
        )

    outputs = asyncio.run(main())
    for address, output in zip(fleet.addresses, outputs, strict=True):
        lines = output.split()
        assert lines[0] == address  # the namespace's only address besides loopback
        assert lines[-1] == address  # its own /srv: no other host overwrote the file
