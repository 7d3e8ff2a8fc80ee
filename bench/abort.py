"""Abort latency: from `baepo abort` (the API call) until every new request reaches stable.

A canary at 50 % under a steady sequential load is aborted; the figure is the time from the
abort request being sent to the start of the last request that still reached the canary
(0 when none did). Each run retries the rollout back to 50 % and aborts again. Goal
(issue: progressive delivery): <= 100 ms, 0 failed requests.

    .venv/bin/python bench/abort.py [--runs 5]

Writes bench/results/abort.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import SampleProject  # noqa: E402

STRATEGY = "{canary: {steps: [{set_weight: 50}, {pause: {}}], abort_scale_down_delay: 30s}}"


class Prober(threading.Thread):
    """Sequential GETs on one keep-alive connection, recording (send time, version)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.seen: list[tuple[float, str]] = []
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                self.failed += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                continue
            if response.status != 200:
                self.failed += 1
            self.seen.append((sent, response.getheader("X-Sample-Version") or "?"))
        conn.close()


def post(url: str, path: str, body: dict[str, Any]) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status}")
    conn.close()


def paused_at_half(status: dict[str, Any]) -> bool:
    rollout = status.get("rollout")
    weights = {t["revision"]: t["weight"] for t in status["traffic"]}
    return bool(rollout and rollout["phase"] == "paused" and len(weights) == 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="baepo-bench-"))
    project = SampleProject(workdir / "app")
    latencies: list[float] = []
    failed = 0
    try:
        project.write("1.0.0", replicas=2)
        project.ok("deploy", "--wait")
        project.write("2.0.0", replicas=2, strategy=STRATEGY)
        project.ok("deploy", "--no-wait")
        url = project.server_info()["url"]
        for run in range(args.runs):
            if run:
                project.ok("retry")
            project.wait_for(paused_at_half, what="the canary at 50 %")
            prober = Prober(project.port)
            prober.start()
            time.sleep(1.0)
            decided = time.monotonic()
            post(url, "/api/v1/apps/sample/abort", {"actor": "bench"})
            time.sleep(1.0)
            prober.stop.set()
            prober.join()
            canary = [sent for sent, version in prober.seen if version == "2.0.0"]
            last = max(canary) if canary else decided
            latencies.append(max(0.0, last - decided))
            failed += prober.failed
            late = 1000 * latencies[-1]
            print(
                f"run {run + 1}: last canary request {late:.1f} ms after the abort decision; "
                f"{len(prober.seen)} requests, {prober.failed} failed"
            )
    finally:
        project.clean_up()
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "abort_to_stable_ms_median": round(1000 * statistics.median(latencies), 1),
        "abort_to_stable_ms_max": round(1000 * max(latencies), 1),
        "runs_ms": [round(1000 * x, 1) for x in latencies],
        "failed_requests": failed,
        "goal_ms": 100,
    }
    out = ROOT / "bench" / "results" / "abort.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"abort -> 100 % stable: median {result['abort_to_stable_ms_median']} ms, max "
        f"{result['abort_to_stable_ms_max']} ms (goal <= 100 ms); failed requests: {failed}"
    )


if __name__ == "__main__":
    main()
