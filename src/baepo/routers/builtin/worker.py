"""A router worker: the proxy itself, serving on the listening sockets its master opened.

``run`` is what a freshly forked worker executes: it asks the kernel to send it SIGTERM when
its master dies (so an orphan drains and leaves the port to the master's successor), loads
the saved table, serves clients (``client``), the admin API (``admin``) and, with
``--metrics-listen``, Prometheus ``GET /metrics`` (``metrics``) on the inherited sockets, and
on SIGTERM/SIGINT stops accepting, lets in-flight requests finish (at most ``--grace``
seconds) and returns 0. The sockets stay open in the master, so stopping or dying here never
closes them. Caller: ``master`` (in the forked child).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baepo.routers.builtin import state
from baepo.routers.builtin.admin import AdminServer
from baepo.routers.builtin.client import ClientConnection
from baepo.routers.builtin.runtime import Limits, Runtime
from baepo.routers.builtin.sockets import Listeners

if TYPE_CHECKING:
    from baepo.routers.builtin.metrics import MetricsServer

log = logging.getLogger("baepo.router")
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@dataclass(frozen=True)
class Lineage:
    """What a worker knows of its master: pid, start (monotonic) and workers started before."""

    master_pid: int
    master_started: float
    restarts: int


def die_with_master() -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux; else nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        log.warning("cannot ask to be stopped with the master; an orphan worker stays up")


async def start_metrics(
    rt: Runtime, args: argparse.Namespace, listeners: Listeners
) -> MetricsServer | None:
    """The metrics server on the inherited ``--metrics-listen`` sockets, None without them.

    Imports ``prometheus_client`` only when asked for (the master imports it before forking,
    so a restarted worker does not pay for it again).
    """
    if not listeners.metrics:
        return None
    from baepo.routers.builtin import metrics  # only routers with metrics load it

    identity = metrics.Identity(args.app, args.env, args.listener)
    server = metrics.MetricsServer(metrics.registry_for(rt, identity))
    await server.serve_on(listeners.metrics)
    return server


async def serve(args: argparse.Namespace, listeners: Listeners, lineage: Lineage) -> int:
    limits = Limits(args.upstream_timeout, args.idle_timeout, args.connect_timeout)
    rt = Runtime(limits)
    rt.apply(state.load_table(args.state))
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(lambda: ClientConnection(rt), sock=sock)
        for sock in listeners.client
    ]
    metrics = await start_metrics(rt, args, listeners)
    started = time.monotonic()
    info = {
        "pid": lineage.master_pid,
        "worker_pid": os.getpid(),
        "worker_restarts": lineage.restarts,
        "listen": args.listen,
        "metrics_listen": args.metrics_listen,
        "upstream_timeout": limits.upstream_timeout,
        "idle_timeout": limits.idle_timeout,
        "connect_timeout": limits.connect_timeout,
    }
    admin = AdminServer(
        rt,
        args.state,
        lambda: info | {"worker_uptime": round(time.monotonic() - started, 3)},
        started=lineage.master_started,
    )
    assert listeners.admin is not None
    await admin.serve_on(listeners.admin)
    rt.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked since the fork
    if os.getppid() != lineage.master_pid:
        stop.set()  # the master died before this worker asked to follow it
    log.info(
        "worker %d serving %s (admin %s), %d backends",
        os.getpid(),
        args.listen,
        args.admin,
        len(rt.routes),
    )
    # Long-lived objects are made; keep the collector away from the request path.
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    await stop.wait()
    log.info("stopping: draining %d connections (at most %g s)", len(rt.clients), args.grace)
    for server in servers:
        server.close()
    if metrics is not None:
        metrics.stop_accepting()
    await rt.drain(args.grace)
    if metrics is not None:
        await metrics.close()
    await admin.close()
    log.info("worker %d stopped", os.getpid())
    return 0


def run(args: argparse.Namespace, listeners: Listeners, lineage: Lineage) -> int:
    """The body of a forked worker; returns its exit code. SIGTERM and SIGINT are blocked
    (by the master, around the fork) until the worker's event loop handles them."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    die_with_master()
    return asyncio.run(serve(args, listeners, lineage))
