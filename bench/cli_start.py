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
import resource
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


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="baepo-bench-"))
    project = SampleProject(workdir / "app")
    if os.geteuid() == 0:  # as the test suite does: root's python is not nobody's to run
        project.env.update({"BAEPO_RUN_USER": "root", "BAEPO_ALLOW_ROOT_INSTANCES": "1"})
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    try:
        project.write("1.0.0", replicas=1)
        project.ok("deploy", "--wait")
        for argv in COMMANDS.values():  # warm the page cache once
            timed(argv, project.root, project.env)
        for _ in range(args.runs):
            for name, argv in COMMANDS.items():
                wall, used = timed(argv, project.root, project.env)
                times[name].append(wall)
                cpu[name].append(used)
    finally:
        project.clean_up()
        shutil.rmtree(workdir, ignore_errors=True)
    reference = statistics.median(times["python -c pass"])
    cpu_reference = statistics.median(cpu["python -c pass"])
    result = {
        "runs": args.runs,
        "median_seconds": {name: round(statistics.median(t), 4) for name, t in times.items()},
        "vs_python_start": {
            name: round(statistics.median(t) / reference, 2) for name, t in times.items()
        },
        "median_cpu_seconds": {name: round(statistics.median(t), 4) for name, t in cpu.items()},
        "cpu_vs_python_start": {
            name: round(statistics.median(t) / cpu_reference, 2) for name, t in cpu.items()
        },
        "goals": {"baepo status": 0.3},
    }
    out = ROOT / "bench" / "results" / "cli_start.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median of {args.runs} interleaved rounds, wall and CPU (user + system) time, each")
    print("with its ratio to a bare python start (CPU time is the steadier on a busy machine):")
    for name in COMMANDS:
        wall, used = result["median_seconds"][name], result["median_cpu_seconds"][name]
        print(
            f"  {name:<16} wall {wall * 1000:6.0f} ms {result['vs_python_start'][name]:6.2f}x"
            f"   cpu {used * 1000:6.0f} ms {result['cpu_vs_python_start'][name]:6.2f}x"
        )
    print("goal: baepo status well under 300 ms on an idle machine")


if __name__ == "__main__":
    main()
