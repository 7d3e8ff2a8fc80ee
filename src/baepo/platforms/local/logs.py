"""Reading instance logs for ``baepo logs``: the last lines, and following new ones.

Every line is prefixed with its instance id; lines of several instances are merged by their
timestamps. Following survives rotation: the open file is drained, then the backups written
since, then the live file is opened (lines are lost only when more rotations than backups
happen between two polls). It also survives an instance's directory moving to the archive
when it stops: the open file stays valid.
Callers: ``platform.LocalPlatform.read_logs`` and ``follow_logs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import BinaryIO

from baepo.platforms.local.logfile import TIMESTAMP_WIDTH, log_files, tail_lines
from baepo.platforms.local.records import LOG_FILE

LogDirs = Callable[[], list[tuple[str, Path]]]  # (instance id, instance directory)
READ_CHUNK = 1024 * 1024


def read_logs(dirs: list[tuple[str, Path]], tail: int) -> list[str]:
    """The last ``tail`` lines over all ``dirs``, oldest first, as ``<id> <timestamp> <text>``."""
    merged: list[tuple[str, str, str]] = []
    for instance_id, directory in dirs:
        for line in tail_lines(directory / LOG_FILE, tail):
            merged.append((line[:TIMESTAMP_WIDTH], instance_id, line))
    merged.sort(key=lambda item: item[0])  # stable: one instance's lines keep their order
    return [f"{instance_id} {line}" for _, instance_id, line in merged[-tail:]] if tail > 0 else []


class LogTail:
    """Follows one instance's ``output.log`` across rotations, yielding whole lines."""

    def __init__(self, instance_id: str, path: Path, *, from_end: bool) -> None:
        self.instance_id = instance_id
        self._handle: BinaryIO | None = None
        self._inode: int | None = None
        self._partial = b""
        self._open(path, from_end=from_end)

    def poll(self, path: Path) -> list[str]:
        """New complete lines; ``path`` is where the live log is now."""
        data = self._read()
        try:
            stat = os.stat(path)
        except OSError:
            stat = None
        if stat is not None:
            if self._handle is None or stat.st_ino != self._inode:
                # The file we held was rotated away (and drained above): read the backups
                # written since (several rotations between two polls), then the live file.
                for newer in self._rotated_since(path):
                    with contextlib.suppress(OSError):
                        data += newer.read_bytes()
                self.close()
                self._open(path, from_end=False)
                data += self._read()
            elif stat.st_size < self._handle.tell():
                self._handle.seek(0)  # truncated in place
                data += self._read()
        return self._lines(data)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._inode = None

    def _rotated_since(self, path: Path) -> list[Path]:
        """Backups newer than the file held open, oldest first (all if ours is gone)."""
        if self._handle is None:
            return []
        backups = log_files(path)[:-1] if path.exists() else log_files(path)
        for index, backup in enumerate(backups):
            with contextlib.suppress(OSError):
                if os.stat(backup).st_ino == self._inode:
                    return backups[index + 1 :]
        return backups

    def _open(self, path: Path, *, from_end: bool) -> None:
        try:
            handle = path.open("rb")
        except OSError:
            return
        self._handle = handle
        self._inode = os.fstat(handle.fileno()).st_ino
        if from_end:
            handle.seek(0, os.SEEK_END)

    def _read(self) -> bytes:
        return self._handle.read(READ_CHUNK) if self._handle is not None else b""

    def _lines(self, data: bytes) -> list[str]:
        if not data:
            return []
        *complete, self._partial = (self._partial + data).split(b"\n")
        return [
            f"{self.instance_id} {raw.decode(errors='replace').rstrip(chr(13))}" for raw in complete
        ]


async def follow(list_dirs: LogDirs, *, poll_interval: float = 0.2) -> AsyncGenerator[str, None]:
    """New lines of every instance ``list_dirs`` names, until the caller stops iterating.

    Instances known at the start are followed from their current end; instances that appear
    later, from their first line.
    """
    tails: dict[str, LogTail] = {}
    first = True
    try:
        while True:
            current = dict(list_dirs())
            for instance_id, directory in current.items():
                if instance_id not in tails:
                    tails[instance_id] = LogTail(instance_id, directory / LOG_FILE, from_end=first)
            first = False
            for instance_id, tail in list(tails.items()):
                live = current.get(instance_id)
                if live is None:
                    tail.close()
                    del tails[instance_id]
                    continue
                for line in tail.poll(live / LOG_FILE):
                    yield line
            await asyncio.sleep(poll_interval)
    finally:
        for tail in tails.values():
            tail.close()
