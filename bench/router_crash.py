"""Crashes in the data plane under load: SIGKILL of the router's worker, of its master, of an
instance's supervisor and of an app process, and what each costs in failed requests.

A real ``baepo server`` runs the sample app (``--replicas``, default 2) behind the built-in
router; a paced load of ``--rate`` (100) req/s, spread over ``--clients`` (4) keep-alive
connections, goes through the router the whole time. Every request is timed (monotonic).

A reused keep-alive connection found closed before any answer gets its GET sent once more on
a new connection, as browsers, curl, Go and urllib3 do (RFC 9112, 9.3.1); those are counted
apart ("stale, retried"), not as failures: a kill closes the idle connections the worker
held, and a client that never retries would fail one request on each.

- **worker**: ``--kills`` (10) times, ``--gap`` (2) s apart, ``kill -9`` of the router's
  worker (the master's child). Per kill: the requests that failed, the requests in flight
  at the kill (sent before the worker was seen gone, not answered before the kill: the most
  a kill may cost), and the time from the kill to the first answer to a request sent after
  it (a prober opening a new connection every 5 ms), against the goal of 0.5 s.
- **master**: ``kill -9`` of the router's master (its pid is ``router.pid``): the worker
  drains and exits, the port is closed until the controller starts a new router. Failed
  requests until the router answers again, and that time.
- **supervisor** and **app**: ``kill -9`` of one instance's supervisor, then of one app
  process; failed requests over the next ``--watch`` (5) s.

Prints a table, asserts nothing, writes ``bench/results/router_crash.json``.

    .venv/bin/python bench/router_crash.py [--kills 10] [--rate 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import SampleProject  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "router_crash.json"
GOAL_ANSWER = 0.5


@dataclass
class Attempt:
    started: float
    ended: float = 0.0
    ok: bool = False
    retried: bool = False  # sent again after its reused connection closed without an answer


# A reused keep-alive connection closed before any byte of an answer came back: what every
# common client (browsers, curl, Go's net/http, urllib3, httpx) retries once on a new
# connection for an idempotent request (RFC 9112, 9.3.1). http.client does not, so do it here.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Load:
    """``clients`` threads, each on a keep-alive connection, paced to ``rate`` req/s in all;
    a failed request closes its connection and the next one opens a new one. A GET whose
    reused connection turns out closed is sent once more, as real clients do (``STALE``)."""

    def __init__(self, port: int, rate: float, clients: int) -> None:
        self.port = port
        self.interval = clients / rate
        self.attempts: list[Attempt] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)
        ]

    def _run(self, n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        due = time.monotonic() + n * self.interval / len(self.threads)
        while not self.stop.is_set():
            time.sleep(max(0.0, due - time.monotonic()))
            due += self.interval
            attempt = Attempt(time.monotonic())
            with self.lock:
                self.attempts.append(attempt)
            for _ in range(2):
                reused = conn.sock is not None
                try:
                    conn.request("GET", "/")
                    response = conn.getresponse()
                    response.read()
                    attempt.ok = response.status == 200
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    if reused and isinstance(exc, STALE) and not attempt.retried:
                        attempt.retried = True
                        continue
                break
            attempt.ended = time.monotonic()
        conn.close()

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)

    def between(self, start: float, end: float) -> list[Attempt]:
        """Attempts that overlap [start, end] (unfinished ones count as still running)."""
        with self.lock:
            return [a for a in self.attempts if a.started <= end and (a.ended or end) >= start]


def first_answer(port: int, since: float, timeout: float = 30.0) -> float:
    """Seconds from ``since`` until a request on a new connection is answered 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                return time.monotonic() - since
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.005)
    return float("inf")


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.001)
    return time.monotonic()


def router_master(project: SampleProject) -> int:
    (pid_file,) = project.state_dir.glob("routers/sample.*/router.pid")
    return int(pid_file.read_text())


def one_worker(master: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := children(master):
            return found[0]
        time.sleep(0.005)
    raise SystemExit(f"no worker under the router master {master}")


def kill_and_watch(
    load: Load, pid: int, port: int, watch: float, *, answer_timeout: float = 30.0
) -> dict[str, Any]:
    """SIGKILL ``pid`` under ``load``; failed and in-flight requests, time to an answer."""
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    dead = wait_gone(pid)
    answer = first_answer(port, killed, answer_timeout)
    time.sleep(max(0.0, killed + watch - time.monotonic()))
    in_flight = [a for a in load.between(killed, dead) if a.ended == 0 or a.ended >= killed]
    window = load.between(killed, time.monotonic())
    failed = [a for a in window if a.ended and not a.ok]
    return {
        "failed": len(failed),
        "retried_stale": sum(1 for a in window if a.retried),
        "in_flight": len(in_flight),
        "failed_not_in_flight": len({id(a) for a in failed} - {id(a) for a in in_flight}),
        "requests": len(window),
        "first_answer_s": round(answer, 4),
        "death_s": round(dead - killed, 4),
    }


def instance_pids(project: SampleProject, word: str) -> list[int]:
    return sorted(pid for pid, cmd in project.processes() if word in cmd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of the worker")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between them")
    parser.add_argument("--rate", type=float, default=100.0, help="req/s offered")
    parser.add_argument("--clients", type=int, default=4, help="keep-alive connections")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--watch", type=float, default=5.0, help="s observed after a kill")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="baepo-crash-"))
    project = SampleProject(workdir / "app")
    results: dict[str, Any] = {"args": vars(args)}
    load: Load | None = None
    try:
        project.write("1.0.0", replicas=args.replicas)
        project.ok("deploy", "--wait")
        load = Load(project.port, args.rate, args.clients).start()
        time.sleep(args.gap)
        master = router_master(project)
        worker_kills = []
        for n in range(args.kills):
            worker = one_worker(master)
            row = kill_and_watch(load, worker, project.port, args.gap)
            row["master_unchanged"] = router_master(project) == master and alive(master)
            worker_kills.append(row)
            print(
                f"worker kill {n + 1:2d}: failed {row['failed']}, in flight {row['in_flight']}, "
                f"first answer after {row['first_answer_s'] * 1000:.1f} ms",
                flush=True,
            )
        results["worker"] = worker_kills
        row = kill_and_watch(load, master, project.port, args.watch)
        row["new_master"] = router_master(project) != master
        results["master"] = row
        print(f"master kill: {row}", flush=True)
        time.sleep(args.gap)
        for word, name in (("supervisor", "supervisor"), ("app.py", "app")):
            pids = instance_pids(project, word)
            row = kill_and_watch(load, pids[0], project.port, args.watch)
            results[name] = row
            print(f"{name} kill: {row}", flush=True)
            time.sleep(args.gap)
    finally:
        if load is not None:
            load.finish()
        project.clean_up()
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, load)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")
    return 0


def report(results: dict[str, Any], load: Load | None) -> None:
    kills = results["worker"]
    print()
    print(
        "kill -9 of       failed  in flight  stale, retried  first answer (ms)  requests in window"
    )
    rows = [(f"worker {n}", row) for n, row in enumerate(kills, 1)]
    rows += [(name, results[name]) for name in ("master", "supervisor", "app")]
    for name, row in rows:
        print(
            f"{name:<16s} {row['failed']:6d} {row['in_flight']:10d} "
            f"{row['retried_stale']:15d} {row['first_answer_s'] * 1000:18.1f} "
            f"{row['requests']:19d}"
        )
    answers = [row["first_answer_s"] for row in kills]
    summary = {
        "worker_failed_total": sum(row["failed"] for row in kills),
        "worker_in_flight_total": sum(row["in_flight"] for row in kills),
        "worker_failed_not_in_flight": sum(row["failed_not_in_flight"] for row in kills),
        "worker_retried_stale_total": sum(row["retried_stale"] for row in kills),
        "worker_first_answer_median_ms": round(statistics.median(answers) * 1000, 1),
        "worker_first_answer_max_ms": round(max(answers) * 1000, 1),
        "master_unchanged": all(row["master_unchanged"] for row in kills),
        "requests": len(load.attempts) if load else 0,
        "load_average": os.getloadavg(),
    }
    results["summary"] = summary
    print()
    for key, value in summary.items():
        print(f"{key:32s} {value}")
    goals = {
        "a worker kill fails at most its in-flight requests": summary["worker_failed_not_in_flight"]
        == 0,
        f"a new worker answers within {GOAL_ANSWER} s": max(answers) <= GOAL_ANSWER,
        "supervisor kill: 0 failed": results["supervisor"]["failed"] == 0,
        "app kill: 0 failed": results["app"]["failed"] == 0,
    }
    for goal, met in goals.items():
        print(f"{'met   ' if met else 'MISSED'} {goal}")


if __name__ == "__main__":
    raise SystemExit(main())
