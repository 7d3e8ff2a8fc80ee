"""Fleet deploy benchmark: `baepo deploy --wait` of the sample app on 3 SSH hosts.

Builds the test fleet (`scripts/fleet up 3`: network namespaces with their own sshd, needs
root), deploys the sample app there with `target: hosts` (3 replicas, one per host, rolling one
at a time: `max_surge: 1, max_unavailable: 0`), then times `--runs` rolling deploys of new
versions from command to done. The same deploys on the local target are the reference
measured in the same run, so the ratio says what SSH and the hosts cost. Tears the fleet down.

    .venv/bin/python bench/fleet.py [--runs 3]

Writes bench/results/fleet.json. Prints figures only; exit 2 without root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from harness import SampleProject  # noqa: E402
from test_hosts_deploy import SPEC  # noqa: E402

ADDRESSES = ("10.213.0.11", "10.213.0.12", "10.213.0.13")


def fleet(*args: str, directory: Path) -> None:
    env = {**os.environ, "BAEPO_FLEET_DIR": str(directory)}
    subprocess.run([str(ROOT / "scripts" / "fleet"), *args], env=env, check=True,
                   capture_output=True, timeout=120)  # fmt: skip


def timed_deploys(project: SampleProject, write: object, runs: int) -> list[float]:
    times = []
    for n in range(runs):
        write(f"2.0.{n}")  # type: ignore[operator]
        started = time.perf_counter()
        project.ok("deploy", "--wait", timeout=300)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit(2)
    workdir = Path(tempfile.mkdtemp(prefix="baepo-bench-fleet-"))
    hosts_dir = workdir / "hosts"
    results: dict[str, list[float]] = {}
    try:
        fleet("up", "3", directory=hosts_dir)
        key, known = hosts_dir / "id_ed25519", hosts_dir / "known_hosts"
        on_hosts = SampleProject(workdir / "hosts-app")
        hosts = [{"address": a, "user": "root", "key": str(key)} for a in ADDRESSES]

        def write_hosts(version: str) -> None:
            text = SPEC.format(
                version=version, port=on_hosts.port, hosts=json.dumps(hosts), known_hosts=known
            )
            on_hosts.spec.write_text(text)

        local = SampleProject(workdir / "local-app")

        def write_local(version: str) -> None:
            local.write(version, replicas=3)

        try:
            write_hosts("1.0.0")
            on_hosts.ok("deploy", "--wait", timeout=300)
            write_local("1.0.0")
            local.ok("deploy", "--wait")
            results["hosts"] = timed_deploys(on_hosts, write_hosts, args.runs)
            results["local"] = timed_deploys(local, write_local, args.runs)
        finally:
            on_hosts.clean_up()
            local.clean_up()
    finally:
        fleet("down", directory=hosts_dir)
        shutil.rmtree(workdir, ignore_errors=True)
    hosts_median = statistics.median(results["hosts"])
    local_median = statistics.median(results["local"])
    summary = {
        "hosts_deploy_seconds_median": round(hosts_median, 2),
        "local_deploy_seconds_median": round(local_median, 2),
        "hosts_vs_local": round(hosts_median / local_median, 2),
        "runs": {k: [round(v, 2) for v in vs] for k, vs in results.items()},
    }
    out = ROOT / "bench" / "results" / "fleet.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"rolling deploy, 3 replicas one at a time: 3 SSH hosts median {hosts_median:.2f} s, "
        f"local median {local_median:.2f} s ({summary['hosts_vs_local']}x); runs {summary['runs']}"
    )


if __name__ == "__main__":
    main()
