"""baepo's agent on a host: supervises the instances of one host, run over SSH as a script.

``HostsPlatform`` uploads this file to ``<path>/.baepo/agent.py`` on each host and runs it as
``python3 agent.py COMMAND ...``; nothing in baepo imports it. It needs only python3 (3.10 or
newer, stdlib). It stays one file on purpose, although longer than baepo's other modules: one
upload, one path and one version per host, with nothing to import from beside it.

- ``unpack ARCHIVE DEST``: extract a release tar (``.tar``, ``.tar.gz``, ``.tgz``) into DEST
  (once; atomic rename), drop ARCHIVE; members with absolute paths or ``..`` are refused
- ``fetch URL DEST [SHA256]``: download the release archive (refused when its SHA-256 differs)
  and unpack it into DEST; nothing is downloaded when DEST exists
- ``build DEST CWD TIMEOUT -- ARGV...`` (environment JSON on stdin): run ARGV in CWD (DEST
  or a folder in it) unless DEST built before (the ``.baepo-built.json`` marker), killed
  after TIMEOUT seconds; on a failure print its last output lines
- ``start DIR`` (instance JSON on stdin): pick a free port on the host's address, write
  ``instance.json``, start a detached supervisor for the instance and print ``{"port": N}``
- ``stop DIR [GRACE]``: SIGTERM the supervisor (which stops the app: SIGTERM, then SIGKILL
  after the grace period), SIGKILL whatever is left after GRACE + 2 s, archive DIR
- ``restart DIR``: ask the supervisor (SIGUSR1) to restart the app
- ``status BASE``: one JSON list of the instances under BASE (stopped ones are archived)
- ``logs BASE TAIL [REVISION]`` / ``follow BASE``: instance output, lines ``<id> <text>``

The supervisor (``supervise DIR``, started by ``start``) runs the app in its own process group
with its output timestamped in ``output.log``, keeps ``state.json`` current, restarts the app
with exponential backoff and gives up (phase ``failed``) on a crash loop. Secrets arrive on
``start``'s stdin and live only in the supervisor's memory, never in a file.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import tarfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

INSTANCE_FILE = "instance.json"
STATE_FILE = "state.json"
PID_FILE = "agent.pid"
STOP_FILE = "stop.json"
LOG_FILE = "output.log"
AGENT_LOG = "agent.log"
ARCHIVE = "logs"
POLL = 0.05
KEEP_RELEASES = 5  # release folders kept per app and environment, besides those in use
BUILT_FILE = ".baepo-built.json"  # in a release folder: its build succeeded
BUILD_LOG = ".baepo-build.log"  # in a release folder: the build's output
BUILD_TAIL = 20  # output lines of a failed build shown to the controller
DOWNLOAD_TIMEOUT = 60.0  # seconds without progress before a download is given up
# An instance's last output lines, reported as the evidence of a failed start; the same bounds
# and cleaning as baepo.core.evidence and baepo.core.causes (which this file cannot import).
TAIL_LINES = 20
LINE_CHARS = 300
_CONTROL_RE = re.compile(
    "\x1b\\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)  # terminal escapes first, then single control and direction characters


def utc_now() -> str:
    now = datetime.now(timezone.utc)  # noqa: UP017 (datetime.UTC needs python 3.11)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def agent_pid(directory: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((directory / PID_FILE).read_text().strip())
    return None


def killpg(pgid: int | None, sig: signal.Signals) -> None:
    if pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


# -- commands run over SSH ----------------------------------------------------------------


def unpack(archive: Path, dest: Path) -> None:
    try:
        if not dest.is_dir():
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                extract(archive, tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            os.replace(tmp, dest)
    finally:
        with contextlib.suppress(OSError):
            archive.unlink()
    prune_releases(dest.parent)


def extract(archive: Path, dest: Path) -> None:
    """Extract a (possibly compressed) tar into ``dest``; SystemExit naming the member on an
    absolute path or a ``..``, and on an archive that cannot be read."""
    try:
        with tarfile.open(archive) as tar:  # compression is detected from the content
            for member in tar.getmembers():
                name = Path(member.name)
                if member.name.startswith("/") or ".." in name.parts:
                    raise SystemExit(
                        f"unsafe member in the release archive: {member.name!r} "
                        "(absolute paths and '..' are refused)"
                    )
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # an older python3 without extraction filters: no links at all
                for member in tar.getmembers():
                    if member.issym() or member.islnk():
                        raise SystemExit(f"unsafe member in the release archive: {member.name}")
                tar.extractall(dest)  # noqa: S202 (members checked above)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SystemExit(f"cannot unpack the release archive {archive.name}: {exc}") from exc


def fetch(url: str, dest: Path, sha256: str | None) -> None:
    """Download the release archive at ``url`` and unpack it into ``dest`` (nothing to do
    when ``dest`` exists); a SHA-256 other than ``sha256`` refuses it."""
    if dest.is_dir():
        prune_releases(dest.parent)
        return
    download = dest.with_name(f".{dest.name}.{os.getpid()}.download")
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as answer,  # noqa: S310
            download.open("wb") as out,
        ):
            while chunk := answer.read(1 << 16):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, ValueError) as exc:  # urllib's errors are OSErrors
        with contextlib.suppress(OSError):
            download.unlink()
        raise SystemExit(f"cannot download {url}: {exc}") from exc
    found = digest.hexdigest()
    if sha256 and found != sha256.lower():
        with contextlib.suppress(OSError):
            download.unlink()
        raise SystemExit(
            f"refused the download of {url}: its sha256 is {found}, expected {sha256.lower()}"
        )
    unpack(download, dest)


def last_lines(path: Path, count: int) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-count:])
    return ""


def run_build(
    cwd: Path, argv: list[str], env: dict[str, str], log_path: Path, timeout: float
) -> int | None:
    """Run ``argv`` in ``cwd`` in its own process group, its output in ``log_path``; its
    exit code, or None when it outlived ``timeout`` (its whole group is killed)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.chdir(cwd)
            null = os.open(os.devnull, os.O_RDONLY)
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.execvpe(argv[0], argv, env)  # noqa: S606 (the user's build command, no shell)
        except OSError as exc:
            os.write(2, f"cannot run the build command {argv[0]!r}: {exc}\n".encode())
        os._exit(127)
    deadline = time.monotonic() + timeout
    while True:
        done, status_code = os.waitpid(pid, os.WNOHANG)
        if done:
            killpg(pid, signal.SIGKILL)  # whatever the build left running in its group
            return os.waitstatus_to_exitcode(status_code)
        if time.monotonic() >= deadline:
            killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(POLL)


def build(release: Path, cwd: Path, timeout: float, argv: list[str]) -> None:
    """Run the build command ``argv`` in ``cwd`` (in ``release``) unless ``release`` built
    before; one build of a release at a time (a lock on its folder). SystemExit with its
    last output lines when it fails or outlives ``timeout``."""
    extra = json.loads(sys.stdin.read() or "{}")
    if not release.is_dir():
        raise SystemExit(f"no release folder {release} to build")
    if not cwd.is_dir():
        raise SystemExit(f"no folder {cwd} in the release to build in (see run.cwd)")
    folder = os.open(release, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        if (release / BUILT_FILE).exists():
            print(f"{release.name} is already built", flush=True)
            return
        env = {**os.environ, **{str(k): str(v) for k, v in extra.items()}}
        log_path = release / BUILD_LOG
        started = time.monotonic()
        code = run_build(cwd, argv, env, log_path, timeout)
        seconds = time.monotonic() - started
        if code != 0:
            why = f"timed out after {timeout:g}s" if code is None else f"exited with {code}"
            raise SystemExit(
                f"`{shlex.join(argv)}` {why} in {cwd}; its last lines:\n"
                f"{last_lines(log_path, BUILD_TAIL)}"
            )
        write_json(
            release / BUILT_FILE,
            {"command": argv, "built_at": utc_now(), "seconds": round(seconds, 3)},
        )
        print(f"built {release.name} in {seconds:.1f}s", flush=True)
    finally:
        os.close(folder)


def prune_releases(app_dir: Path) -> None:
    """Remove release folders ``r<N>`` beyond the newest ``KEEP_RELEASES``, except those an
    instance still runs in."""
    releases = sorted(
        (p for p in app_dir.iterdir() if p.is_dir() and p.name[1:].isdigit() and p.name[0] == "r"),
        key=lambda p: int(p.name[1:]),
        reverse=True,
    )
    in_use = set()
    for directory in (app_dir / "instances").iterdir() if (app_dir / "instances").is_dir() else []:
        record = read_json(directory / INSTANCE_FILE) or {}
        in_use.add(f"r{record.get('revision')}")
    for release in releases[KEEP_RELEASES:]:
        if release.name not in in_use:
            shutil.rmtree(release, ignore_errors=True)


def free_port(host: str, taken: set[int]) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port
    raise SystemExit("no free port")


def start(directory: Path) -> None:
    request = json.loads(sys.stdin.read())
    secret_env = request.pop("secret_env", {}) or {}
    taken: set[int] = set()
    for sibling in directory.parent.iterdir() if directory.parent.is_dir() else []:
        data = read_json(sibling / INSTANCE_FILE)
        if data is not None and isinstance(data.get("port"), int):
            taken.add(data["port"])
    directory.mkdir(parents=True)
    request["port"] = free_port(request["host"], taken)
    request["created_at"] = utc_now()
    write_json(directory / INSTANCE_FILE, request)
    read_end, write_end = os.pipe()
    if os.fork() == 0:  # the supervisor, detached from the SSH session
        os.close(read_end)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        log = os.open(directory / AGENT_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        (directory / PID_FILE).write_text(f"{os.getpid()}\n")
        os.write(write_end, b"1")
        os.close(write_end)
        code = 1
        try:
            code = Supervisor(directory, request, secret_env).run()
        finally:
            os._exit(code)
    os.close(write_end)
    os.read(read_end, 1)  # the supervisor has written its pid
    print(json.dumps({"port": request["port"]}), flush=True)


def stop(directory: Path, grace: float | None) -> None:
    if not directory.is_dir():
        return
    record = read_json(directory / INSTANCE_FILE) or {}
    if grace is not None:
        write_json(directory / STOP_FILE, {"grace": grace})
    wait = (grace if grace is not None else float(record.get("stop_grace_period", 10))) + 2.0
    pid = agent_pid(directory)
    if alive(pid):
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(POLL)
    state = read_json(directory / STATE_FILE) or {}
    killpg(state.get("pid"), signal.SIGKILL)
    if alive(pid):
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    archive(directory)


def restart(directory: Path) -> None:
    pid = agent_pid(directory)
    if alive(pid):
        assert pid is not None
        os.kill(pid, signal.SIGUSR1)


def archive(directory: Path) -> None:
    if not directory.is_dir():
        return  # archived already (by a stop or a status beside this one)
    target = directory.parent.parent / ARCHIVE / directory.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.replace(directory, target)
    old = sorted(target.parent.iterdir(), key=modified, reverse=True)
    for stale in old[20:]:
        shutil.rmtree(stale, ignore_errors=True)


def modified(path: Path) -> float:
    """``path``'s mtime; 0 when it is gone (a stop or status beside this one removed it)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def status(base: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    # A stop running beside this status may archive (move away) any directory at any time:
    # one that is gone is left out, never an error that would hide the host's other instances.
    for directory in sorted(base.iterdir()) if base.is_dir() else []:
        record = read_json(directory / INSTANCE_FILE)
        if record is None:
            continue
        state = read_json(directory / STATE_FILE) or {}
        pid = agent_pid(directory)
        if not directory.is_dir():
            continue  # stopped and archived meanwhile
        supervised = alive(pid)
        phase = state.get("phase", "starting")
        message = str(state.get("message", ""))
        if not supervised:
            if pid is None and time.time() - modified(directory) < 10:
                phase = "starting"
            elif phase in ("stopped", "stopping"):
                archive(directory)
                continue
            elif phase != "failed":
                killpg(state.get("pid"), signal.SIGKILL)
                phase, message = "failed", f"the agent (pid {pid}) is gone; see {AGENT_LOG}"
        found.append(
            {
                "id": directory.name,
                "revision": record.get("revision"),
                "port": record.get("port"),
                "readiness": record.get("readiness"),
                "liveness": record.get("liveness"),
                "created_at": record.get("created_at"),
                "phase": phase,
                "message": message,
                "pid": state.get("pid") if supervised else None,
                "restarts": state.get("restarts", 0),
                "started_at": state.get("started_at"),
                "last_exit_code": state.get("last_exit_code"),
                "output": state.get("output") or [],
            }
        )
    return found


def output_tail(lines: list[str], secrets: list[str]) -> list[str]:
    """The app's last lines as evidence: secrets blanked, control characters gone, bounded."""
    hidden = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)
    cleaned = []
    for raw in lines:
        text = raw
        for secret in hidden:
            text = text.replace(secret, "***")
        text = _CONTROL_RE.sub("", text.replace("\t", " ")).rstrip()
        if text:
            cleaned.append(text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…")
    return cleaned[-TAIL_LINES:]


def log_dirs(base: Path, revision: int | None) -> list[Path]:
    dirs = []
    for root in (base.parent / ARCHIVE, base):
        for directory in sorted(root.iterdir()) if root.is_dir() else []:
            record = read_json(directory / INSTANCE_FILE) or {}
            if revision is None or record.get("revision") == revision:
                dirs.append(directory)
    return dirs


def logs(base: Path, tail: int, revision: int | None) -> None:
    lines: list[tuple[str, str]] = []
    for directory in log_dirs(base, revision):
        with contextlib.suppress(OSError):
            for line in (directory / LOG_FILE).read_text(errors="replace").splitlines()[-tail:]:
                lines.append((line[:24], f"{directory.name} {line}"))
    lines.sort(key=lambda item: item[0])
    for _, line in lines[-tail:] if tail > 0 else []:
        print(line)


def follow(base: Path) -> None:
    """Print new output lines until the SSH session ends: a blank heartbeat line every few
    seconds fails once the reader is gone, and so does a change of parent process."""
    parent = os.getppid()
    offsets: dict[str, int] = {}  # by instance id: a stopped instance's folder moves
    for directory in log_dirs(base, None):
        with contextlib.suppress(OSError):
            offsets[directory.name] = (directory / LOG_FILE).stat().st_size
    beat = time.monotonic()
    try:
        while os.getppid() == parent:
            for directory in log_dirs(base, None):
                start_at = offsets.get(directory.name, 0)
                try:
                    with (directory / LOG_FILE).open("rb") as handle:
                        handle.seek(start_at)
                        chunk = handle.read()
                except FileNotFoundError:
                    continue
                complete = chunk[: chunk.rfind(b"\n") + 1]
                for line in complete.decode(errors="replace").splitlines():
                    print(f"{directory.name} {line}", flush=True)
                offsets[directory.name] = start_at + len(complete)
            if time.monotonic() - beat > 5.0:
                print("", flush=True)
                beat = time.monotonic()
            time.sleep(0.5)
    except BrokenPipeError:
        return


# -- the supervisor ---------------------------------------------------------------------------


class Supervisor:
    """Runs one app process, restarts it, and stops it when told (SIGTERM)."""

    def __init__(self, directory: Path, record: dict[str, Any], secret_env: dict[str, str]):
        self.directory = directory
        self.record = record
        self.secret_env = secret_env
        self.stopping = False
        self.restart_requested = False
        self.state: dict[str, Any] = {"phase": "starting", "restarts": 0, "pid": None}
        self.log_lock = threading.Lock()
        self.output: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def update(self, **changes: Any) -> None:
        self.state.update(changes, updated_at=utc_now())
        write_json(self.directory / STATE_FILE, self.state)

    def note(self, message: str) -> None:
        self.write_line(f"[agent] {message}")

    def write_line(self, text: str) -> None:
        path = self.directory / LOG_FILE
        with self.log_lock:
            with contextlib.suppress(OSError):
                if path.stat().st_size > int(self.record.get("log_max_bytes", 10 << 20)):
                    os.replace(path, path.with_name(LOG_FILE + ".1"))
            with path.open("a") as handle:
                handle.write(f"{utc_now()} {text}\n")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        crashes: list[float] = []
        delay = float(self.record.get("backoff_initial", 0.2))
        while not self.stopping:
            pid, pump = self._spawn()
            code = self._watch(pid)
            pump.join(timeout=2.0)
            tail = output_tail(list(self.output), list(self.secret_env.values()))
            self.update(last_exit_code=code, output=tail)
            if self.asked_to_stop():
                break
            if self.restart_requested:  # restart_instance (a liveness failure): no backoff
                self.restart_requested = False
                self.update(restarts=self.state["restarts"] + 1)
                continue
            now = time.monotonic()
            window = float(self.record.get("crash_loop_window", 60))
            crashes = [t for t in crashes if now - t < window] + [now]
            if len(crashes) > int(self.record.get("crash_loop_restarts", 3)):
                message = f"crash loop: exited with {code} {len(crashes)} times in {window:g}s"
                self.note(message)
                self.update(phase="failed", pid=None, message=message)
                return 1
            message = f"exited with {code}; restarting in {delay:g}s"
            self.note(message)
            self.update(
                phase="starting", restarts=self.state["restarts"] + 1, pid=None, message=message
            )
            deadline = time.monotonic() + delay
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(POLL)
            delay = min(delay * 2, float(self.record.get("backoff_max", 10)))
        self.update(phase="stopped", pid=None, message="stopped")
        return 0

    def asked_to_stop(self) -> bool:
        return self.stopping

    def _on_term(self, _sig: int, _frame: object) -> None:
        self.stopping = True

    def _on_usr1(self, _sig: int, _frame: object) -> None:
        self.restart_requested = True

    def _spawn(self) -> tuple[int, threading.Thread]:
        port = str(self.record["port"])
        argv = [arg.replace("{port}", port) for arg in self.record["command"]]
        env = {**os.environ, **self.record.get("env", {}), **self.secret_env, "PORT": port}
        env["BAEPO_INSTANCE"] = self.directory.name
        read_end, write_end = os.pipe()
        self.output.clear()  # the evidence of a failure is this run's output
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                os.chdir(self.record["cwd"])
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(write_end, 1)
                os.dup2(write_end, 2)
                os.execvpe(argv[0], argv, env)  # noqa: S606 (the agent's job: run the app)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError) and "/" not in argv[0]:
                    why = (
                        f"command {argv[0]!r} not found in PATH: install it, or give its "
                        f"full path in run.command (PATH is {env.get('PATH', '')})"
                    )
                else:
                    why = f"cannot start {argv[0]!r}: {exc.strerror or exc}"
                os.write(write_end, f"{why}\n".encode())
            os._exit(127)
        os.close(write_end)
        pump = threading.Thread(target=self._pump, args=(read_end,), daemon=True)
        pump.start()
        self.note(f"started {argv[0]!r} as pid {pid} on port {port}")
        self.update(phase="running", pid=pid, started_at=utc_now(), message="")
        return pid, pump

    def _pump(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as stream:
            for raw in iter(lambda: stream.readline(64 * 1024), b""):
                line = raw.decode(errors="replace").rstrip("\n")
                self.write_line(line)
                self.output.append(line[: LINE_CHARS * 2])

    def _watch(self, pid: int) -> int:
        kill_at: float | None = None
        while True:
            done, status_code = os.waitpid(pid, os.WNOHANG)
            if done:
                killpg(pid, signal.SIGKILL)  # whatever the app left in its group
                return os.waitstatus_to_exitcode(status_code)
            if kill_at is None and (self.stopping or self.restart_requested):
                grace = float(self.record.get("stop_grace_period", 10))
                override = read_json(self.directory / STOP_FILE)
                if override is not None and isinstance(override.get("grace"), int | float):
                    grace = float(override["grace"])
                if self.stopping:
                    self.update(phase="stopping", message="stopping")
                self.note(f"sending SIGTERM to pid {pid} (SIGKILL in {grace:g}s)")
                killpg(pid, signal.SIGTERM)
                kill_at = time.monotonic() + grace
            elif kill_at is not None and time.monotonic() >= kill_at:
                self.note(f"pid {pid} still running after the grace period: SIGKILL")
                killpg(pid, signal.SIGKILL)
                kill_at = float("inf")
            time.sleep(POLL)


def main(argv: list[str]) -> int:
    if not argv:
        print(
            "usage: agent.py unpack|fetch|build|start|stop|restart|status|logs|follow ...",
            file=sys.stderr,
        )
        return 2
    command, args = argv[0], argv[1:]
    if command == "unpack":
        unpack(Path(args[0]), Path(args[1]))
    elif command == "fetch":
        fetch(args[0], Path(args[1]), args[2] if len(args) > 2 else None)
    elif command == "build":
        if len(args) < 5 or args[3] != "--":
            print("usage: agent.py build DEST CWD TIMEOUT -- ARGV...", file=sys.stderr)
            return 2
        build(Path(args[0]), Path(args[1]), float(args[2]), args[4:])
    elif command == "start":
        start(Path(args[0]))
    elif command == "stop":
        stop(Path(args[0]), float(args[1]) if len(args) > 1 else None)
    elif command == "restart":
        restart(Path(args[0]))
    elif command == "status":
        print(json.dumps(status(Path(args[0]))))
    elif command == "logs":
        logs(Path(args[0]), int(args[1]), int(args[2]) if len(args) > 2 else None)
    elif command == "follow":
        follow(Path(args[0]))
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
