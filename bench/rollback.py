"""Automated rollback: time from a canary's fault onset to 100 % stable, and false rollbacks.

Two parts, each with a real server, router and sample-app instances (3 replicas of stable):

- **time to rollback**: a canary held at 10 % (`[set_weight: 10, pause: {}]`) under 200 req/s
  from the load generator turns bad a few seconds after it starts (the sample app's
  ``SAMPLE_FAULT_AFTER_S``), either with 30 % errors or with 300 ms more latency. The fault
  onset is the instant the canary instance itself prints (``fault onset at <unix time>``),
  read back through the logs API; the end is the ``traffic.changed`` event that follows the
  ``rollout.rolled_back`` one (written once the router acknowledged the all-stable table).
  A client polling ``GET /apps/sample`` at 20 Hz gives a second, outside view of the same
  moment. Failed user requests are the load generator's non-2xx answers and connection
  errors from the deploy until the table is back on stable. Default guards; goal <= 2 s.
- **false rollbacks**: healthy releases deployed one after the other with steps
  `[set_weight: 20, pause: 5s, set_weight: 50, pause: 5s]` under 100 req/s, where both the
  stable and the new revision add 20 ms +- 50 % latency and fail 0.1 % of requests. Every
  rollback is a false one. Goal 0.

    .venv/bin/python bench/rollback.py [--runs 5] [--deploys 20] [--quick]

As root, run it with BAEPO_RUN_USER=root BAEPO_ALLOW_ROOT_INSTANCES=1, as the tests do (the
default account, nobody, may not run this checkout's interpreter).

Prints the tables and writes them to bench/results/rollback.txt.
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import SampleProject  # noqa: E402

from baepo.cli.loadgen import LoadGenerator, LoadReport  # noqa: E402

HOLD = "{canary: {steps: [{set_weight: 10}, {pause: {}}], abort_scale_down_delay: 1s}}"
STEPS = (
    "{canary: {steps: [{set_weight: 20}, {pause: {duration: 5s}}, "
    "{set_weight: 50}, {pause: {duration: 5s}}]}}"
)
CASES = {
    "30% errors": {"SAMPLE_ERROR_RATE": "0.3"},
    "+300 ms latency": {"SAMPLE_LATENCY_MS": "300"},
}
NOISE = {"SAMPLE_LATENCY_MS": "20", "SAMPLE_LATENCY_JITTER": "0.5", "SAMPLE_ERROR_RATE": "0.001"}
ONSET_RE = re.compile(r"fault onset at (\d+\.\d+)")
GOAL_SECONDS = 2.0


class Api:
    """GETs on one keep-alive connection to the baepo server."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.headers = headers  # the server's local credential
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def text(self, path: str) -> str:
        for attempt in range(3):
            try:
                self.conn.request("GET", path, headers=self.headers)
                response = self.conn.getresponse()
                body = response.read().decode()
                if response.status != 200:
                    raise SystemExit(f"GET {path}: HTTP {response.status}: {body[:200]}")
                return body
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        return json.loads(self.text(path))

    def close(self) -> None:
        self.conn.close()


class Poller(threading.Thread):
    """Polls the app's status at ~20 Hz, recording (wall time, revisions with weight)."""

    def __init__(self, url: str, headers: dict[str, str], interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.api = Api(url, headers)
        self.interval = interval
        self.seen: list[tuple[float, frozenset[int]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 900
        next_at = time.monotonic()
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                traffic = self.api.get("/api/v1/apps/sample")["traffic"]
            except (OSError, http.client.HTTPException, ValueError):
                traffic = None
            if traffic is not None:
                weighted = frozenset(t["revision"] for t in traffic if t["weight"] > 0)
                self.seen.append((time.time(), weighted))
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))
        self.api.close()

    def first_only(self, revision: int, after: float) -> float | None:
        """The first poll after ``after`` that saw all traffic on ``revision``."""
        for at, weighted in list(self.seen):
            if at >= after and weighted == {revision}:
                return at
        return None


@dataclass
class Run:
    """One fault injection: its instants (unix seconds) and what the users saw."""

    case: str
    onset: float
    canary_routed: float | None
    decided: float | None
    switched: float | None
    polled: float | None
    guard: str
    failed: int
    sent: int
    to_canary: int

    @property
    def detect(self) -> float | None:
        return None if self.decided is None else self.decided - self.onset

    @property
    def rollback(self) -> float | None:
        return None if self.switched is None else self.switched - self.onset

    @property
    def rollback_polled(self) -> float | None:
        return None if self.polled is None else self.polled - self.onset


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)


ROUTE_RE = re.compile(r"\br(\d+) (\d+)%")


def routes_to(message: str, revision: int) -> bool:
    """Whether a ``traffic.changed`` message ("routing: r1 90% on 3, r2 10% on 1") gives
    ``revision`` a share of the traffic."""
    return any(int(r) == revision and int(share) > 0 for r, share in ROUTE_RE.findall(message))


def unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def last_event_id(api: Api) -> int:
    events = api.get("/api/v1/apps/sample/events?limit=10000")
    return max((int(e["id"]) for e in events), default=0)


def deploy(project: SampleProject, api: Api) -> tuple[int, int]:
    """``baepo deploy --no-wait``; the new rollout's id and revision."""
    project.ok("deploy", "--no-wait")
    rollout = api.get("/api/v1/apps/sample")["rollout"] or {}
    if not rollout:
        last = api.get("/api/v1/apps/sample")["last_rollout"]
        return int(last["id"]), int(last["revision"])
    return int(rollout["id"]), int(rollout["revision"])


def wait_finished(api: Api, rollout_id: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    rollout: dict[str, Any] = {}
    while time.monotonic() < deadline:
        rollout = api.get(f"/api/v1/rollouts/{rollout_id}")
        if rollout.get("finished_at"):
            return rollout
        time.sleep(0.1)
    raise SystemExit(f"rollout {rollout_id} did not finish in {timeout:g}s: {rollout}")


def fault_onset(api: Api, revision: int, timeout: float = 30) -> float:
    """The earliest onset printed by an instance of ``revision``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = api.text(f"/api/v1/apps/sample/logs?revision={revision}&tail=1000")
        onsets = [float(m.group(1)) for m in ONSET_RE.finditer(text)]
        if onsets:
            return min(onsets)
        time.sleep(0.1)
    raise SystemExit(f"no instance of revision {revision} printed its fault onset")


def wait_gone(api: Api, revision: int, timeout: float = 30) -> None:
    """Until no instance of ``revision`` is left (the rolled-back canary is stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instances = api.get("/api/v1/apps/sample")["instances"]
        if not any(i["revision"] == revision for i in instances):
            return
        time.sleep(0.2)


def fault_runs(
    workdir: Path, runs: int, rate: float, fault_after: float, report: Report
) -> list[Run]:
    project = SampleProject(workdir / "fault")
    results: list[Run] = []
    try:
        project.write("1.0.0", replicas=3)
        project.ok("deploy", "--wait")
        url = project.server_info()["url"]
        api = Api(url, project.headers())
        stable = int(api.get("/api/v1/apps/sample")["stable_revision"])
        load = LoadGenerator(
            "127.0.0.1", project.port, workers=20, rate=rate, max_requests=10**7,
            max_seconds=1800,
        ).start()  # fmt: skip
        poller = Poller(url, project.headers())
        poller.start()
        time.sleep(2.0)
        number = 0
        for case, env in CASES.items():
            for n in range(runs):
                number += 1
                version = f"2.0.{number}"
                project.write(
                    version,
                    replicas=3,
                    strategy=HOLD,
                    extra_env={**env, "SAMPLE_FAULT_AFTER_S": str(fault_after)},
                )
                after = last_event_id(api)
                before = load.snapshot()
                rollout_id, revision = deploy(project, api)
                onset = fault_onset(api, revision)
                rollout = wait_finished(api, rollout_id, timeout=fault_after + 60)
                events = api.get(f"/api/v1/apps/sample/events?after={after}&limit=10000")
                decided, switched, routed, guard = None, None, None, "?"
                for event in events:
                    at = unix(event["at"])
                    if event["kind"] == "rollout.rolled_back" and decided is None:
                        decided = at
                        found = re.match(r"rollback guard (\w+)", event["message"])
                        guard = found.group(1) if found else event["message"][:40]
                    elif event["kind"] == "traffic.changed":
                        # A rollback pushes its all-stable table before it records the
                        # decision: the switch is the first change after the canary was
                        # routed that leaves it no weight, whichever event comes first.
                        weighted = routes_to(event["message"], revision)
                        if weighted and routed is None:
                            routed = at
                        elif not weighted and routed is not None and switched is None:
                            switched = at
                deadline = time.monotonic() + 10
                polled = poller.first_only(stable, onset)
                while polled is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                    polled = poller.first_only(stable, onset)
                time.sleep(0.5)  # answers still in flight at the switch
                after_load = load.snapshot()
                versions = after_load.versions[version] - before.versions[version]
                run = Run(
                    case=case,
                    onset=onset,
                    canary_routed=routed,
                    decided=decided,
                    switched=switched,
                    polled=polled,
                    guard=guard if rollout["phase"] == "rolled_back" else rollout["phase"],
                    failed=after_load.failed - before.failed,
                    sent=after_load.sent - before.sent,
                    to_canary=versions,
                )
                results.append(run)
                report.say(
                    f"  {case:<16} run {n + 1}: detect {fmt(run.detect)}, 100 % stable "
                    f"{fmt(run.rollback)} (polled {fmt(run.rollback_polled)}) after the onset; "
                    f"canary routed {fmt(None if routed is None else onset - routed)} before "
                    f"it; guard {run.guard}; {run.failed} failed of {run.sent}, "
                    f"{run.to_canary} to the canary"
                )
                wait_gone(api, revision)
        poller.stop.set()
        poller.join()
        final: LoadReport = load.stop()
        report.say(
            f"  load over the whole part: {final.sent} requests in {final.seconds:.0f}s "
            f"({final.sent / final.seconds:.0f}/s), {final.failed} failed {dict(final.statuses)}"
        )
        api.close()
    finally:
        project.clean_up()
    return results


def false_rollbacks(
    workdir: Path, deploys: int, rate: float, report: Report
) -> tuple[int, list[str], LoadReport]:
    """``deploys`` healthy releases in a row: the phase of each and the reasons of rollbacks."""
    project = SampleProject(workdir / "noise")
    reasons: list[str] = []
    rolled_back = 0
    try:
        project.write("1.0.0", replicas=3, extra_env=NOISE)
        project.ok("deploy", "--wait")
        api = Api(project.server_info()["url"], project.headers())
        load = LoadGenerator(
            "127.0.0.1", project.port, workers=10, rate=rate, max_requests=10**7,
            max_seconds=1800,
        ).start()  # fmt: skip
        time.sleep(2.0)
        for n in range(deploys):
            version = f"1.1.{n + 1}"
            project.write(version, replicas=3, strategy=STEPS, extra_env=NOISE)
            started = time.monotonic()
            rollout_id, _ = deploy(project, api)
            rollout = wait_finished(api, rollout_id, timeout=120)
            if rollout["phase"] != "healthy":
                rolled_back += 1
                reasons.append(f"{version}: {rollout['phase']}: {rollout['message']}")
            report.say(
                f"  deploy {n + 1:>2} ({version}): {rollout['phase']} in "
                f"{time.monotonic() - started:.1f}s"
                + ("" if rollout["phase"] == "healthy" else f": {rollout['message']}")
            )
        final = load.stop()
        api.close()
    finally:
        project.clean_up()
    return rolled_back, reasons, final


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}s"


def summarize(runs: list[Run], report: Report) -> bool:
    """The time-to-rollback table; True when every run met the goal."""
    report.say()
    header = (
        "| case | runs | detect median | to 100 % stable median | max | polled median | max "
        "| failed requests (per run) | guard |"
    )
    report.say(header)
    report.say("|---|---|---|---|---|---|---|---|---|")
    met = True
    for case in CASES:
        mine = [r for r in runs if r.case == case]
        if not mine:
            continue
        detect = [r.detect for r in mine if r.detect is not None]
        back = [r.rollback for r in mine if r.rollback is not None]
        polled = [r.rollback_polled for r in mine if r.rollback_polled is not None]
        missing = len(mine) - len(back)
        met = met and not missing and max(back) <= GOAL_SECONDS
        guards = sorted({r.guard for r in mine})
        failed = [r.failed for r in mine]
        report.say(
            f"| {case} | {len(mine)} | {fmt(median(detect))} | {fmt(median(back))} | "
            f"{fmt(max(back, default=None))} | {fmt(median(polled))} | "
            f"{fmt(max(polled, default=None))} | {sum(failed)} "
            f"(median {statistics.median(failed):g}, max {max(failed)}) | {', '.join(guards)} |"
        )
    return met


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fault injections per case")
    parser.add_argument("--deploys", type=int, default=20, help="healthy deploys")
    parser.add_argument("--rate", type=float, default=200.0, help="req/s, time to rollback")
    parser.add_argument("--noise-rate", type=float, default=100.0, help="req/s, false rollbacks")
    parser.add_argument("--fault-after", type=float, default=3.0, help="seconds, canary start")
    parser.add_argument("--quick", action="store_true", help="2 runs per case, 5 deploys")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rollback.txt")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.deploys = min(args.runs, 2), min(args.deploys, 5)
    report = Report()
    began = time.monotonic()
    report.say(
        f"bench/rollback.py on {platform.node()} ({platform.machine()}, "
        f"{len(__import__('os').sched_getaffinity(0))} CPUs), "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; default rollback guards"
    )
    workdir = Path(tempfile.mkdtemp(prefix="baepo-bench-"))
    try:
        report.say()
        report.say(
            f"time to rollback: canary held at 10 % of {args.rate:g} req/s, 3 stable replicas, "
            f"fault {args.fault_after:g}s after the canary starts, {args.runs} runs per case"
        )
        runs = fault_runs(workdir, args.runs, args.rate, args.fault_after, report)
        report.say()
        report.say(
            f"false rollbacks: {args.deploys} healthy deploys under {args.noise_rate:g} req/s, "
            "20 ms +- 50 % latency and 0.1 % errors in both revisions, "
            "steps 20 %, pause 5s, 50 %, pause 5s"
        )
        false, reasons, load = false_rollbacks(workdir, args.deploys, args.noise_rate, report)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    met = summarize(runs, report)
    report.say()
    report.say("| healthy deploys | rolled back | requests | failed (0.1 % injected) |")
    report.say("|---|---|---|---|")
    report.say(f"| {args.deploys} | {false} | {load.sent} | {load.failed} |")
    for reason in reasons:
        report.say(f"  {reason}")
    report.say()
    report.say(
        f"goals: time to 100 % stable <= {GOAL_SECONDS:g}s in every run: "
        f"{'met' if met else 'MISSED'}; false rollbacks = 0: {'met' if not false else 'MISSED'}"
        f" (bench took {time.monotonic() - began:.0f}s)"
    )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text("\n".join(report.lines) + "\n")
    sys.exit(0 if met and not false else 1)


if __name__ == "__main__":
    main()
