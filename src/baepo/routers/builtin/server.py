"""The router process: command line, listening sockets, then the master's loop.

``python -m baepo.routers.builtin --listen HOST:PORT --admin SOCK --state FILE`` runs ``main``.
It opens the client listener, the admin unix socket and, with ``--metrics-listen HOST:PORT
--app APP --env ENV [--listener NAME]``, the Prometheus listener (``sockets``), then becomes
the ``master``: a worker (``worker``) forked on those sockets loads the saved table and
proxies; a worker that dies is replaced at once while the sockets stay open. On SIGTERM/SIGINT
the worker stops accepting and lets in-flight requests finish (at most ``--grace`` seconds),
and the process exits 0. Exit code 3 means it could not listen. Started by ``adapter``.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import time
from pathlib import Path

from baepo.routers.builtin import master, sockets, worker
from baepo.routers.builtin.sockets import Listeners
from baepo.routers.builtin.table import split_address

log = logging.getLogger("baepo.router")
EXIT_CANNOT_LISTEN = 3


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m baepo.routers.builtin",
        description="baepo's built-in HTTP/1.1 reverse proxy for one app+environment.",
    )
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept clients on")
    parser.add_argument("--admin", required=True, type=Path, help="unix socket of the admin API")
    parser.add_argument("--state", required=True, type=Path, help="file keeping the table")
    parser.add_argument("--upstream-timeout", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--idle-timeout", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--connect-timeout", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--grace", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--metrics-listen", metavar="HOST:PORT", help="serve GET /metrics here")
    parser.add_argument("--app", default="", help="the app, a label of every metric")
    parser.add_argument("--env", default="", help="the environment, a label of every metric")
    parser.add_argument("--listener", default="main", help="the listener, a label of every metric")
    args = parser.parse_args(argv)
    for option in ("listen", "metrics_listen"):
        try:
            if getattr(args, option) is not None:
                split_address(getattr(args, option))
        except ValueError as exc:
            parser.error(f"--{option.replace('_', '-')}: {exc}")
    if args.metrics_listen is not None and not (args.app and args.env):
        parser.error("--metrics-listen: give --app and --env too (they label the metrics)")
    for name in ("upstream_timeout", "idle_timeout", "connect_timeout", "grace"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')}: must be positive")
    return args


def cannot_listen_message(listen: str, exc: OSError) -> str:
    port = listen.rpartition(":")[2]
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {listen}: port {port} is already in use"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {listen}: permission denied for port {port}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {listen}: the address is not available on this machine"
    return f"cannot listen on {listen}: {exc.strerror or exc}"


def open_or_explain(args: argparse.Namespace) -> Listeners | None:
    """Every listening socket, or None after logging which one could not be opened and why."""
    try:
        return sockets.open_listeners(args.listen, args.metrics_listen, args.admin)
    except sockets.ListenError as exc:
        if exc.option == "admin":
            log.error("cannot create the admin socket %s: %s", args.admin, exc.cause)
        elif exc.option == "metrics_listen":
            log.error("metrics_listen: %s", cannot_listen_message(exc.address, exc.cause))
        else:
            log.error("%s", cannot_listen_message(exc.address, exc.cause))
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s router[%(process)d] %(levelname)s %(message)s",
    )
    listeners = open_or_explain(args)
    if listeners is None:
        return EXIT_CANNOT_LISTEN
    if args.metrics_listen is not None:
        # Imported once here, so that no restarted worker pays for it.
        from baepo.routers.builtin import metrics  # noqa: F401
    me, started = os.getpid(), time.monotonic()
    boss = master.Master(
        lambda restarts: worker.run(args, listeners, worker.Lineage(me, started, restarts)),
        listeners.close,
    )
    log.info("router %d: listening on %s, admin on %s", os.getpid(), args.listen, args.admin)
    try:
        return boss.run()
    finally:
        listeners.close()
        listeners.remove_admin()
        log.info("stopped")
