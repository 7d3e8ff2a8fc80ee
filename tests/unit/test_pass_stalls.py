"""No controller pass waits on an import: in a fresh interpreter (scipy not yet imported), a
started controller loads the guards' statistics in a thread while its event loop keeps
answering, and the first judgement of a window with errors, which a pass makes as soon as the
guards may judge, takes well under 250 ms.

Run in a subprocess so that nothing this test session imported (scipy, by other tests) hides
the import a pass would otherwise do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LONGEST_PASS = 0.25

PROBE = """
import asyncio, json, sys, time
from pathlib import Path

from baepo.analysis.guards import check_guards
from baepo.controller.loop import Controller
from baepo.core.latency import window
from baepo.core.ports import RevisionStats
from baepo.registry import make_platform, make_routers
from baepo.spec.rollback import RollbackSpec
from baepo.store import open_store

state = Path(sys.argv[1])
before = "scipy.stats" in sys.modules


def rates(revision, errors, requests):
    status = {"2xx": requests - errors, "5xx": errors}
    stats = RevisionStats(revision, requests, status, {"0.01": requests, "+Inf": requests}, 0.1)
    return window(None, stats, 2.0)


async def main():
    store = open_store(f"sqlite:///{state / 'state.db'}")
    controller = Controller(store, make_platform("local", state), make_routers(state))
    controller.start()
    reconciler = controller.reconciler
    ready = getattr(reconciler, "statistics_loaded", lambda: True)
    lag, started = 0.0, time.monotonic()
    while not ready():  # the loop keeps turning while the statistics load
        tick = time.monotonic()
        await asyncio.sleep(0.01)
        lag = max(lag, time.monotonic() - tick - 0.01)
        assert time.monotonic() - started < 120, "the statistics never loaded"
    # What a pass does once the guards may judge: the first window holding errors.
    by_window = {2.0: {2: rates(2, 6, 20), 1: rates(1, 0, 200)}}
    tick = time.perf_counter()
    trip = check_guards(RollbackSpec(), 2, 1, by_window)
    judged = time.perf_counter() - tick
    await controller.stop()
    store.close()
    print(json.dumps({"before": before, "judged": judged, "lag": lag, "trip": trip.guard}))


asyncio.run(main())
"""


def test_the_first_judgement_of_errors_waits_on_no_import(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["before"] is False  # a fresh interpreter: nothing imported scipy yet
    assert found["trip"] == "error_rate"
    assert found["judged"] < LONGEST_PASS, found
