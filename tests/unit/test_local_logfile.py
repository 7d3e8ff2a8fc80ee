"""Unit tests of instance log files: timestamped lines, rotation, reading the tail, following."""

from __future__ import annotations

import asyncio
from pathlib import Path

from baepo.platforms.local import logs
from baepo.platforms.local.logfile import (
    TIMESTAMP_WIDTH,
    RotatingLog,
    backup_path,
    log_files,
    tail_lines,
)

STAMP = "2024-05-01T12:00:00.000Z"


def fixed_clock() -> str:
    return STAMP


def test_lines_are_timestamped(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "output.log", 1024, 2, clock=fixed_clock)
    log.write("hello\n")
    log.write("world\r\n")
    log.close()
    assert (tmp_path / "output.log").read_text() == f"{STAMP} hello\n{STAMP} world\n"
    assert len(STAMP) == TIMESTAMP_WIDTH


def test_rotates_at_max_bytes_and_keeps_backups(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    log = RotatingLog(path, 1024, 2, clock=fixed_clock)
    for number in range(200):
        log.write(f"line {number:04d}")
    log.close()
    assert [p.name for p in log_files(path)] == ["output.log.2", "output.log.1", "output.log"]
    assert not backup_path(path, 3).exists()
    for file in log_files(path):
        assert file.stat().st_size <= 1024
    lines = [line for file in log_files(path) for line in file.read_text().splitlines()]
    numbers = [int(line.rsplit(" ", 1)[1]) for line in lines]
    assert numbers == list(range(numbers[0], 200))  # contiguous up to the last line


def test_zero_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    log = RotatingLog(path, 1024, 0, clock=fixed_clock)
    for number in range(100):
        log.write(f"line {number:04d}")
    log.close()
    assert log_files(path) == [path]
    assert path.stat().st_size <= 1024
    assert path.read_text().splitlines()[-1].endswith("line 0099")


def test_appends_to_an_existing_file_and_counts_its_size(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    path.write_text("x" * 1000 + "\n")
    log = RotatingLog(path, 1024, 1, clock=fixed_clock)
    log.write("next")
    log.close()
    assert backup_path(path, 1).read_text().startswith("x")
    assert path.read_text() == f"{STAMP} next\n"


def test_tail_reads_across_backups(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    log = RotatingLog(path, 1024, 3, clock=fixed_clock)
    for number in range(120):
        log.write(f"line {number:04d}")
    log.close()
    tail = tail_lines(path, 70)
    assert [line.rsplit(" ", 1)[1] for line in tail] == [f"{n:04d}" for n in range(50, 120)]
    assert tail_lines(path, 0) == []
    assert tail_lines(tmp_path / "missing.log", 5) == []


def test_tail_of_a_large_file_reads_blocks_backwards(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    path.write_text("".join(f"{n:06d} {'y' * 100}\n" for n in range(5000)))
    tail = tail_lines(path, 3)
    assert [line[:6] for line in tail] == ["004997", "004998", "004999"]


def test_read_logs_merges_instances_by_time(tmp_path: Path) -> None:
    first, second = tmp_path / "r1-aaaaaa", tmp_path / "r1-bbbbbb"
    first.mkdir()
    second.mkdir()
    (first / "output.log").write_text("2024-05-01T12:00:00.000Z a1\n2024-05-01T12:00:02.000Z a2\n")
    (second / "output.log").write_text("2024-05-01T12:00:01.000Z b1\n")
    lines = logs.read_logs([("r1-aaaaaa", first), ("r1-bbbbbb", second)], tail=10)
    assert [line.split(" ", 1)[0] + line[-3:] for line in lines] == [
        "r1-aaaaaa a1",
        "r1-bbbbbb b1",
        "r1-aaaaaa a2",
    ]
    assert len(logs.read_logs([("r1-aaaaaa", first), ("r1-bbbbbb", second)], tail=2)) == 2


def test_log_tail_follows_across_rotation(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    log = RotatingLog(path, 1024, 2, clock=fixed_clock)
    log.write("before")
    follower = logs.LogTail("r1-aaaaaa", path, from_end=True)
    seen: list[str] = []
    for number in range(60):  # about 2 rotations between polls
        log.write(f"line {number:04d}")
        if number % 20 == 19:
            seen.extend(follower.poll(path))
    seen.extend(follower.poll(path))
    log.close()
    follower.close()
    assert all(line.startswith(f"r1-aaaaaa {STAMP} line ") for line in seen)
    assert [int(line.rsplit(" ", 1)[1]) for line in seen] == list(range(60))


def test_log_tail_keeps_a_partial_line_until_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "output.log"
    path.write_bytes(b"")
    follower = logs.LogTail("i", path, from_end=False)
    with path.open("ab") as handle:
        handle.write(b"half")
        handle.flush()
        assert follower.poll(path) == []
        handle.write(b" done\n")
        handle.flush()
        assert follower.poll(path) == ["i half done"]
    follower.close()


def test_log_tail_survives_its_directory_moving(tmp_path: Path) -> None:
    live, archived = tmp_path / "instances" / "r1-aaaaaa", tmp_path / "logs" / "r1-aaaaaa"
    live.mkdir(parents=True)
    archived.parent.mkdir()
    log = RotatingLog(live / "output.log", 4096, 1, clock=fixed_clock)
    follower = logs.LogTail("r1-aaaaaa", live / "output.log", from_end=False)
    log.write("one")
    assert follower.poll(live / "output.log") == [f"r1-aaaaaa {STAMP} one"]
    log.write("two")
    log.close()
    live.rename(archived)
    assert follower.poll(archived / "output.log") == [f"r1-aaaaaa {STAMP} two"]
    assert follower.poll(archived / "output.log") == []
    follower.close()


def test_follow_yields_new_lines_of_known_and_later_instances(tmp_path: Path) -> None:
    first, second = tmp_path / "r1-aaaaaa", tmp_path / "r1-bbbbbb"
    first.mkdir()
    (first / "output.log").write_text(f"{STAMP} old\n")
    dirs = [("r1-aaaaaa", first)]

    async def scenario() -> list[str]:
        seen: list[str] = []
        stream = logs.follow(lambda: list(dirs), poll_interval=0.01)
        next_line = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        with (first / "output.log").open("a") as handle:
            handle.write(f"{STAMP} new\n")
        seen.append(await asyncio.wait_for(next_line, 5))
        second.mkdir()
        (second / "output.log").write_text(f"{STAMP} from the start\n")
        dirs.append(("r1-bbbbbb", second))
        seen.append(await asyncio.wait_for(anext(stream), 5))
        await stream.aclose()
        return seen

    assert asyncio.run(scenario()) == [
        f"r1-aaaaaa {STAMP} new",
        f"r1-bbbbbb {STAMP} from the start",
    ]
