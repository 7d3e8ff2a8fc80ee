"""The default canary (``strategy: {canary: {}}``): subtle and clear faults, false rollbacks.

A real server, router and sample-app instances: stable 1.0.0 on 2 replicas, both revisions
with 20 ms +- 50 % latency and 0.1 % errors, ``--rate`` req/s through the router (50 by
default). Each run deploys a version with ``strategy: {canary: {}}`` and nothing else: the
default steps and judgement, the default rollback guards. Cases:

- **+1 % errors**: the canary fails 1.1 % of requests instead of 0.1 %;
- **+25 % latency**: the canary adds 25 ms instead of 20 ms (p95 +25 %);
- **healthy**: the canary is the same as stable (every rollback here is a false one);
- **30 % errors**, **+300 ms**: clear faults, for the rollback guards.

Times are from the canary's first routed traffic (the ``traffic.changed`` event that adds
it) to the end of the rollout; for a rollback also to the ``traffic.changed`` event that
routes every request to stable again ("to stable"). A missed fault is replaced by a healthy
stable before the next run, so every canary is compared with a healthy baseline.

    .venv/bin/python bench/default_canary.py [--runs 5] [--rate 50] [--cases healthy,...]

Prints the table and writes it to bench/results/default_canary-<rate>.txt. Never asserts.
As root, run it with ``BAEPO_RUN_USER=root BAEPO_ALLOW_ROOT_INSTANCES=1`` (as the tests do),
so the instances may run the virtualenv's Python.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))

from harness import SampleProject  # noqa: E402
from rollback import Report, deploy, unix, wait_finished, wait_gone  # noqa: E402

from baepo.cli.loadgen import LoadGenerator  # noqa: E402

if TYPE_CHECKING:
    import httpx


class Api:
    """GETs to the baepo server with the local credential, as the CLI sends it."""

    def __init__(self, project: SampleProject) -> None:
        import httpx

        self.client: httpx.Client = httpx.Client(
            base_url=project.server_info()["url"], headers=project.headers(), timeout=30
        )

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        response.raise_for_status()
        return json.loads(response.text)

    def close(self) -> None:
        self.client.close()


STRATEGY = "{canary: {}}"
NOISE = {"SAMPLE_LATENCY_MS": "20", "SAMPLE_LATENCY_JITTER": "0.5", "SAMPLE_ERROR_RATE": "0.001"}
CASES = {
    "+1% errors": {**NOISE, "SAMPLE_ERROR_RATE": "0.011"},
    "+25% latency": {**NOISE, "SAMPLE_LATENCY_MS": "25"},
    "healthy": NOISE,
    "30% errors": {**NOISE, "SAMPLE_ERROR_RATE": "0.3"},
    "+300 ms": {**NOISE, "SAMPLE_LATENCY_MS": "320"},
}
CATCH_WITHIN = 60.0


def canary_share(message: str, revision: int) -> int:
    """The canary's share in a ``traffic.changed`` message ("routing: r1 90% on 2, r2 10%
    on 1"), 0 when it is not routed."""
    found = re.search(rf"\br{revision} (\d+)%", message)
    return int(found.group(1)) if found else 0


def write(project: SampleProject, version: str, env: dict[str, str], strategy: str) -> None:
    project.write(version, replicas=2, strategy=strategy, extra_env=env, deadline="3600s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case (default 5)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per rollout")
    parser.add_argument(
        "--out", help="results file (default bench/results/default_canary-RATE.txt)"
    )
    args = parser.parse_args()
    cases = {name: CASES[name] for name in args.cases.split(",")}
    report = Report()
    report.say(
        f"# bench/default_canary.py  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  "
        f"{platform.machine()}, {args.runs} runs per case, {args.rate:g} req/s"
    )
    workdir = Path(tempfile.mkdtemp(prefix="baepo-bench-default-canary-"))
    project = SampleProject(workdir / "app")
    outcomes: dict[str, list[tuple[str, float, str]]] = {case: [] for case in cases}
    switched: dict[str, list[float]] = {case: [] for case in cases}  # to all traffic on stable
    try:
        write(project, "1.0.0", NOISE, "{rolling: {max_surge: 1, max_unavailable: 0}}")
        project.ok("deploy", "--wait")
        api = Api(project)
        load = LoadGenerator(
            "127.0.0.1", project.port, workers=8, rate=args.rate, max_requests=10**8,
            max_seconds=6 * 3600,
        ).start()  # fmt: skip
        number = 0
        for n in range(args.runs):
            for case, env in cases.items():
                number += 1
                write(project, f"2.0.{number}", env, STRATEGY)
                rollout_id, revision = deploy(project, api)
                rollout = wait_finished(api, rollout_id, timeout=args.timeout)
                started = unix(rollout["started_at"])
                # Routing events belong to the app, not to a rollout: those since it started.
                events = [
                    e
                    for e in api.get("/api/v1/apps/sample/events?limit=1000")
                    if unix(e["at"]) >= started
                ]
                routed = next(
                    (unix(e["at"]) for e in events if e["kind"] == "traffic.changed"
                     and f"r{revision}" in e["message"]),
                    started,
                )  # fmt: skip
                took = unix(rollout["finished_at"]) - routed
                back = sorted(
                    unix(e["at"]) for e in events if e["kind"] == "traffic.changed"
                    and unix(e["at"]) > routed and canary_share(e["message"], revision) == 0
                )  # fmt: skip
                if rollout["phase"] == "rolled_back" and back:
                    switched[case].append(back[0] - routed)
                cause = rollout.get("cause") or {}
                by = "guard" if cause.get("kind") == "rollback_guard" else cause.get("kind", "")
                if "rollback guard" in rollout["message"]:
                    by = "guard"
                outcomes[case].append((rollout["phase"], took, by or "-"))
                to_stable = (
                    f", to stable {switched[case][-1]:.2f}s"
                    if rollout["phase"] == "rolled_back" and back
                    else ""
                )
                report.say(
                    f"  run {n + 1} {case:<13} {rollout['phase']:<12} after {took:6.1f}s "
                    f"({by or '-'}{to_stable}): {rollout['message'][:140]}"
                )
                if rollout["phase"] != "healthy":
                    wait_gone(api, revision)
                elif case != "healthy":  # a missed fault must not become the next baseline
                    write(project, f"1.0.{number}", NOISE, "{rolling: {max_surge: 1}}")
                    project.ok("deploy", "--wait")
                time.sleep(1.0)
        load.stop()
        api.close()
    finally:
        project.clean_up()
    report.say("")
    report.say(
        f"{'case':<14} {'back ≤60s':>10} {'rolled back':>12} {'median s':>9} "
        f"{'promoted':>9} {'median s':>9} {'to stable':>10}  by"
    )
    for case, results in outcomes.items():
        back = sorted(t for phase, t, _ in results if phase == "rolled_back")
        within = [t for t in back if t <= CATCH_WITHIN]
        promoted = sorted(t for phase, t, _ in results if phase == "healthy")
        by = ", ".join(sorted({b for phase, _, b in results if phase == "rolled_back"})) or "-"

        def median(values: list[float]) -> str:
            return f"{values[len(values) // 2]:.1f}" if values else "-"

        report.say(
            f"{case:<14} {len(within):>4}/{len(results):<5} {len(back):>6}/{len(results):<5} "
            f"{median(back):>9} {len(promoted):>4}/{len(results):<4} {median(promoted):>9} "
            f"{median(sorted(switched[case])):>10}  {by}"
        )
    report.say(
        "goal (50 req/s): ≥ 90 % of +1 % error and +25 % latency canaries rolled back within "
        "60 s; 0 healthy canaries rolled back; clear faults rolled back in ≤ 2 s median"
    )
    out = (
        Path(args.out)
        if args.out
        else ROOT / "bench" / "results" / f"default_canary-{args.rate:g}.txt"
    )
    out.write_text("\n".join(report.lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
