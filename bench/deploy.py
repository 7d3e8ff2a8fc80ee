"""Deploy and CLI-start benchmark: `baepo deploy --wait` and `baepo status` wall times.

Goals (issue: release engine): a rolling deploy of the sample app (3 replicas, app start about
0.2 s) from command to done in <= 3 s; `baepo status` in <= 300 ms. The machine is noisy, so
each figure is the median of several runs and is also printed as a ratio to a reference taken
in the same run (a bare `python -c pass` start).

    .venv/bin/python bench/deploy.py [--runs 5]

Writes bench/results/deploy.json.
"""

from __future__ import annotations

import argparse
import json
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


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="baepo-bench-"))
    project = SampleProject(workdir / "app")
    baepo = [sys.executable, "-m", "baepo"]
    try:
        project.write("1.0.0", extra_env={"SAMPLE_START_DELAY": "0.2"})
        project.ok("deploy", "--wait")
        deploys = []
        for n in range(args.runs):
            version = f"2.0.{n}"
            project.write(version, extra_env={"SAMPLE_START_DELAY": "0.2"})
            deploys.append(timed([*baepo, "deploy", "--wait"], project.root, project.env))
        reference = [
            timed([sys.executable, "-c", "pass"], project.root, project.env) for _ in range(10)
        ]
        statuses = [
            timed([*baepo, "status", "-o", "json"], project.root, project.env) for _ in range(10)
        ]
    finally:
        project.clean_up()
        shutil.rmtree(workdir, ignore_errors=True)
    ref = statistics.median(reference)
    result = {
        "deploy_wait_seconds_median": round(statistics.median(deploys), 3),
        "deploy_wait_seconds_runs": [round(d, 3) for d in deploys],
        "status_seconds_median": round(statistics.median(statuses), 3),
        "python_start_seconds_median": round(ref, 3),
        "status_vs_python_start": round(statistics.median(statuses) / ref, 2),
        "goals": {"deploy_wait_seconds": 3.0, "status_seconds": 0.3},
    }
    out = ROOT / "bench" / "results" / "deploy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    median = result["deploy_wait_seconds_median"]
    print(
        f"deploy --wait (3 replicas, rolling, surge 1): median {median:.2f}s (goal <= 3 s) "
        f"runs {result['deploy_wait_seconds_runs']}"
    )
    print(
        f"status: median {result['status_seconds_median'] * 1000:.0f} ms (goal <= 300 ms); "
        f"{result['status_vs_python_start']}x a bare python start "
        f"({result['python_start_seconds_median'] * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
