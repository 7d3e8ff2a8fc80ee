"""An instance's output log: timestamped lines in a size-rotated file, and reading its tail.

``output.log`` rotates to ``output.log.1`` ... ``output.log.N`` (N = backups, oldest last) when
the next line would make it larger than ``max_bytes``. Stdlib only. Callers: ``supervisor``
(writes app output and its own notes), ``logs`` (reads for ``baepo logs``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from baepo.platforms.local.records import utc_now

TIMESTAMP_WIDTH = len("2024-05-01T12:00:00.123Z")
MAX_LINE_BYTES = 64 * 1024  # longer lines are split; a runaway app cannot exhaust memory
SUPERVISOR_MARK = "[baepo]"


class RotatingLog:
    """Appends ``<timestamp> <text>`` lines; thread-safe (app output and supervisor notes)."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int,
        *,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._clock = clock
        self._lock = threading.Lock()
        self._fd = -1
        self._size = 0
        self._open()

    def write(self, text: str) -> None:
        """Append one line (a trailing newline in ``text`` is dropped)."""
        data = f"{self._clock()} {text.rstrip(chr(10)).rstrip(chr(13))}\n".encode(errors="replace")
        with self._lock:
            if self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            self._size += len(data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.backups <= 0:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        else:
            for index in range(self.backups - 1, 0, -1):
                source = backup_path(self.path, index)
                if source.exists():
                    os.replace(source, backup_path(self.path, index + 1))
            os.replace(self.path, backup_path(self.path, 1))
        self._open()


def backup_path(path: Path, index: int) -> Path:
    """``output.log.<index>``."""
    return path.with_name(f"{path.name}.{index}")


def log_files(path: Path) -> list[Path]:
    """The existing files of one log, oldest first: ``.N`` ... ``.1``, then the live file."""
    backups: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            suffix = entry.name.removeprefix(path.name + ".")
            if entry.name != suffix and suffix.isdigit():
                backups.append((int(suffix), entry))
    files = [entry for _, entry in sorted(backups, reverse=True)]
    if path.exists():
        files.append(path)
    return files


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a log and its backups, oldest first."""
    if count <= 0:
        return []
    lines: deque[str] = deque(maxlen=count)
    for file in reversed(log_files(path)):
        older = _file_tail(file, count - len(lines))
        lines.extendleft(reversed(older))
        if len(lines) >= count:
            break
    return list(lines)


def _file_tail(path: Path, count: int, block: int = 64 * 1024) -> list[str]:
    """The last ``count`` lines of one file, reading backwards in blocks."""
    if count <= 0:
        return []
    try:
        handle = path.open("rb")
    except OSError:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= count:
            step = min(block, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    text = data.decode(errors="replace")
    return text.splitlines()[-count:]
