"""CLI start benchmark: how long `baepo --version`, `baepo --help` and `baepo status` take, as
ratios to a bare `python -c pass` start measured in the same run.

Goal (issue 15, section 4): the CLI answers at once; `baepo status` in well under 300 ms on an
idle machine. The machine is shared and noisy, so the commands are interleaved round by round
(each round runs every command once, in turn) and each figure is the median of `--runs`
rounds; the ratio to the bare Python start of the same rounds is the figure to compare across
machines. `baepo status` asks a running server (the sample app deployed once, as
`bench/deploy.py` does); nothing is asserted.

    .venv/bin/python bench/cli_start.py [--runs 15]

Writes bench/results/cli_start.json.
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

BAEPO = [sys.executable, "-m", "baepo"]
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "baepo --version": [*BAEPO, "--version"],
    "baepo --help": [*BAEPO, "--help"],
    "baepo status": [*BAEPO, "status"],
}


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="baepo-bench-"))
    project = SampleProject(workdir / "app")
    if os.geteuid() == 0:  # as the test suite does: root's python is not nobody's to run
        project.env.update({"BAEPO_RUN_USER": "root", "BAEPO_ALLOW_ROOT_INSTANCES": "1"})
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    try:
        project.write("1.0.0", replicas=1)
        project.ok("deploy", "--wait")
        for argv in COMMANDS.values():  # warm the page cache once
            timed(argv, project.root, project.env)
        for _ in range(args.runs):
            for name, argv in COMMANDS.items():
                times[name].append(timed(argv, project.root, project.env))
    finally:
        project.clean_up()
        shutil.rmtree(workdir, ignore_errors=True)
    reference = statistics.median(times["python -c pass"])
    result = {
        "runs": args.runs,
        "median_seconds": {name: round(statistics.median(t), 4) for name, t in times.items()},
        "vs_python_start": {
            name: round(statistics.median(t) / reference, 2) for name, t in times.items()
        },
        "goals": {"baepo status": 0.3},
    }
    out = ROOT / "bench" / "results" / "cli_start.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median of {args.runs} interleaved rounds (ratio to a bare python start):")
    for name in COMMANDS:
        seconds = result["median_seconds"][name]
        print(f"  {name:<16} {seconds * 1000:7.0f} ms  {result['vs_python_start'][name]:5.2f}x")
    print("goal: baepo status well under 300 ms on an idle machine")


if __name__ == "__main__":
    main()
