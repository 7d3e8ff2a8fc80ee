"""Controller failover: from SIGKILL of the leading server to the new leader's first action.

Two ``baepo server`` replicas share a throwaway PostgreSQL database and one state dir; the
sample app runs a canary whose steps are all indefinite pauses, under a light steady load.
Each run SIGKILLs the leader and at once asks the surviving replica (a follower until then)
to promote the canary. Printed per run, all from the SIGKILL:

- ``lead``: the survivor's ``GET /api/v1/server`` says it leads (polled every 20 ms);
- ``first pass``: the survivor finished its first reconcile pass as leader (its own clock);
- ``first action``: the first event the new leader wrote (the promoted step, a routing change).

A fresh replica replaces the killed one before the next run. No assertions: it prints, and
writes ``bench/results/failover.json``.

    .venv/bin/python bench/failover.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import postgres  # noqa: E402
from harness import SampleProject, serving  # noqa: E402
from test_controller_ha import Replica, cli, until  # noqa: E402

from baepo.cli.loadgen import LoadGenerator  # noqa: E402


def strategy(runs: int) -> str:
    steps = []
    for n in range(runs + 1):
        steps += [f"{{set_weight: {10 + 10 * n}}}", "{pause: {}}"]
    return "{canary: {steps: [" + ", ".join(steps) + "]}}"


def leader_of(replicas: list[Replica]) -> Replica:
    return until(
        lambda: next((r for r in replicas if r.info()["leading"]), None), "a leader", timeout=60
    )


def unix(stamp: str | None) -> float | None:
    return None if stamp is None else datetime.fromisoformat(stamp).timestamp()


def one_run(project: SampleProject, replicas: list[Replica], database: str) -> dict[str, Any]:
    old = leader_of(replicas)
    survivor = next(r for r in replicas if r is not old)
    step = old.status()["canary"]["step"]
    newest = max((e["id"] for e in old.get("/api/v1/apps/sample/events", limit=10_000)), default=0)
    killed = time.time()
    old.kill()
    replicas.remove(old)
    httpx.post(
        f"{survivor.url}/api/v1/apps/sample/promote", json={"actor": "bench"}, timeout=10
    ).raise_for_status()
    until(lambda: survivor.info()["leading"], "the survivor to lead", timeout=60)
    lead = time.time() - killed
    info = until(lambda: (i := survivor.info())["first_pass_at"] and i, "a first pass")
    events = until(
        lambda: [
            e
            for e in survivor.get("/api/v1/apps/sample/events", after=newest)
            if e["actor"] != "bench"  # the promote request itself, written by the follower
        ],
        "an event from the new leader",
        timeout=60,
    )
    first_pass = (unix(info["first_pass_at"]) or killed) - killed
    action = (unix(events[0]["at"]) or killed) - killed
    until(lambda: survivor.status()["canary"]["step"] > step, "the promoted step", timeout=60)
    fresh = Replica(project, database, f"r{int(killed)}")
    replicas.append(fresh)
    until(lambda: fresh.info()["leader"], "the new replica to see the leader", timeout=60)
    return {
        "lead_s": round(lead, 3),
        "first_pass_s": round(first_pass, 3),
        "first_action_s": round(action, 3),
        "first_action": events[0]["message"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="baepo-failover-"))
    project = SampleProject(workdir / "app")
    results: list[dict[str, Any]] = []
    replicas: list[Replica] = []
    with postgres.postgres_server() as pg:
        database = pg.create_database("failover")
        try:
            replicas.append(Replica(project, database, "a"))
            leader_of(replicas)
            replicas.append(Replica(project, database, "b"))
            until(lambda: replicas[1].info()["leader"], "the follower to see the leader")
            project.write("1.0.0", replicas=2)
            cli(project, replicas[0], "deploy", "--wait")
            project.write("2.0.0", replicas=2, strategy=strategy(args.runs))
            cli(project, replicas[0], "deploy", "--no-wait")
            until(lambda: replicas[0].status()["rollout"]["phase"] == "paused", "the canary")
            gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=2, max_seconds=600)
            gen.start()
            try:
                for run in range(args.runs):
                    result = one_run(project, replicas, database)
                    results.append(result)
                    print(
                        f"run {run + 1}: leads after {result['lead_s']:.2f}s, first pass "
                        f"{result['first_pass_s']:.2f}s, first action "
                        f"{result['first_action_s']:.2f}s ({result['first_action']})"
                    )
            finally:
                report = gen.stop()
            alive = replicas[0]
            cli(project, alive, "promote", "--full")
            until(lambda: serving(alive.status(), 2, 2), "revision 2 serving", timeout=120)
            cli(project, alive, "down", "--wait")
        finally:
            for replica in replicas:
                replica.stop()
            (project.state_dir / "server.json").unlink(missing_ok=True)
            project.clean_up()
            shutil.rmtree(workdir, ignore_errors=True)
    summary = {
        key: round(statistics.median(r[key] for r in results), 3)
        for key in ("lead_s", "first_pass_s", "first_action_s")
    }
    out = {"median": summary, "runs": results, "requests": report.sent, "failed": report.failed}
    path = ROOT / "bench" / "results" / "failover.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(
        f"SIGKILL of the leader -> new leader's first action: median "
        f"{summary['first_action_s']:.2f}s (leads {summary['lead_s']:.2f}s, first pass "
        f"{summary['first_pass_s']:.2f}s); {report.sent} requests, {report.failed} failed"
    )


if __name__ == "__main__":
    main()
