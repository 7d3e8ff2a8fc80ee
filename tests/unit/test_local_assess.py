"""Unit tests of the local platform's pure parts: how an instance's files read as its phase,
the instance files' round trip, and port allocation."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from baepo.core.model import InstancePhase
from baepo.core.ports import InstanceSpec, ProbeConfig
from baepo.platforms.local import addresses, records
from baepo.platforms.local.platform import assess, new_instance_id

P = InstancePhase


def state(phase: InstancePhase, message: str = "") -> records.InstanceState:
    return records.InstanceState(phase=phase, supervisor_pid=42, message=message)


@pytest.mark.parametrize(
    ("st", "alive", "expected"),
    [
        (state(P.RUNNING), True, (P.RUNNING, "")),
        (state(P.STARTING), True, (P.STARTING, "")),
        (state(P.STOPPED), True, (P.STOPPING, "")),
        (state(P.FAILED, "exited with code 3, 3 restarts in 60s"), False,
         (P.FAILED, "exited with code 3, 3 restarts in 60s")),
        (state(P.STOPPED), False, None),
        (state(P.STOPPING), False, None),
    ],
)  # fmt: skip
def test_assess(
    st: records.InstanceState, alive: bool, expected: tuple[InstancePhase, str] | None
) -> None:
    assert assess(st, supervisor_pid=42, supervisor_alive=alive, age=1.0) == expected


def test_a_dead_supervisor_of_a_running_instance_is_failed() -> None:
    verdict = assess(state(P.RUNNING), supervisor_pid=42, supervisor_alive=False, age=1.0)
    assert verdict is not None
    assert verdict[0] is P.FAILED
    assert "supervisor (pid 42) is gone" in verdict[1]


def test_no_state_yet() -> None:
    assert assess(None, supervisor_pid=None, supervisor_alive=False, age=1.0) == (P.STARTING, "")
    assert assess(None, supervisor_pid=7, supervisor_alive=True, age=60.0) == (P.STARTING, "")
    failed = assess(None, supervisor_pid=7, supervisor_alive=False, age=1.0)
    assert failed is not None
    assert failed[0] is P.FAILED
    assert "supervisor.log" in failed[1]
    never = assess(None, supervisor_pid=None, supervisor_alive=False, age=60.0)
    assert never is not None
    assert never[0] is P.FAILED


def test_instance_ids() -> None:
    ids = {new_instance_id(3) for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == len("r3-ab12cd") and i.startswith("r3-") for i in ids)


def test_instance_record_round_trip(tmp_path: Path) -> None:
    probe = ProbeConfig("/health/ready", 0.2, 1.0, 3, 1, 0.0)
    spec = InstanceSpec(
        app="sample",
        env="dev",
        revision=2,
        command=["python3", "app.py", "--port", "{port}"],
        cwd="/srv",
        env_vars={"A": "b"},
        stop_grace_period=5.0,
        backoff_initial=0.2,
        backoff_max=10.0,
        crash_loop_restarts=3,
        crash_loop_window=60.0,
        log_max_bytes=1024,
        log_backups=1,
        readiness=probe,
        liveness=ProbeConfig("/health", 1.0, 1.0, 3, 1, 1.0),
    )
    record = records.InstanceRecord("r2-abcdef", "127.0.0.1", 20001, spec, records.utc_now())
    records.write_json_atomic(tmp_path / records.INSTANCE_FILE, record.to_json())
    assert records.load_record(tmp_path) == record
    assert [p.name for p in tmp_path.iterdir()] == [records.INSTANCE_FILE]


def test_state_round_trip_and_garbage(tmp_path: Path) -> None:
    st = records.InstanceState(phase=P.RUNNING, ready=True, restarts=2, pid=10, message="m")
    records.write_json_atomic(tmp_path / records.STATE_FILE, st.to_json())
    assert records.load_state(tmp_path) == st
    (tmp_path / records.STATE_FILE).write_text("{not json")
    assert records.load_state(tmp_path) is None
    assert records.load_record(tmp_path) is None


def test_time_round_trip() -> None:
    stamp = records.utc_now()
    parsed = records.parse_time(stamp)
    assert parsed is not None
    assert parsed.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" == stamp


def test_allocated_ports_are_free_below_the_ephemeral_range_and_not_in_use() -> None:
    low, _ = addresses.ephemeral_range()
    rng = random.Random(1)
    taken = {addresses.allocate_port("127.0.0.1", set(), rng=random.Random(1))}
    port = addresses.allocate_port("127.0.0.1", taken, rng=rng)
    assert port not in taken
    assert addresses.DEFAULT_LOW <= port < low
    assert addresses.can_bind("127.0.0.1", port)


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not addresses.can_bind("127.0.0.1", listener.getsockname()[1])
