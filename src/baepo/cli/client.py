"""The CLI's side of the REST API, and the on-demand local server.

``connect`` finds the server of a state directory (``api.discovery``) and, for the local target,
starts one in the background when none answers, so a user never has to. It sends the
configured API token, else the server's local credential (``local.token`` in the state
directory, readable by its owner only); a URL from ``BAEPO_SERVER`` gets the local
credential only when it is on loopback (a replica on this machine), else the API token
only. Problem+json answers become baepo errors again here.

The client is the standard library's ``http.client`` on purpose: every CLI command pays its
import at start, and ``baepo status`` must answer in well under 300 ms; httpx (with its TLS,
h11 and httpcore imports) alone costs about 170 ms of CPU at start on a small machine, while the
calls here are plain JSON requests over one keep-alive connection. The server's adapters use
httpx. Callers: every CLI command that reads or changes state.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from baepo.api import discovery
from baepo.errors import (
    AuthError,
    BaepoError,
    ConfigError,
    ExternalError,
    ForbiddenError,
    NotFoundError,
    Problem,
    StateError,
)
from baepo.shell import statedir
from baepo.shell.process import pid_alive, python_module_argv, spawn_detached

SERVER_START_TIMEOUT = 30.0
LOCAL_TOKEN_FILE = "local.token"  # noqa: S105 (api.local_credential.TOKEN_FILE, a file name)


def configured_token() -> str | None:
    """The API token: ``BAEPO_TOKEN``, else the file ``$XDG_CONFIG_HOME/baepo/token``
    (``~/.config/baepo/token``), else None."""
    token = os.environ.get("BAEPO_TOKEN", "").strip()
    if token:
        return token
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    try:
        return (config / "baepo" / "token").read_text().strip() or None
    except OSError:
        return None


def local_token(state_dir: Path) -> str | None:
    """The local credential of ``state_dir``'s server (``api.local_credential``), if this user
    can read it."""
    try:
        text = (state_dir / LOCAL_TOKEN_FILE).read_text().strip()
    except OSError:
        return None
    return text or None


def credential(state_dir: Path) -> str | None:
    """What to send to the server of ``state_dir``: the configured API token if there is one,
    else the local credential (unless the server says it requires API tokens)."""
    token = configured_token()
    if token:
        return token
    info = discovery.live_server(state_dir) or {}
    return None if info.get("auth") else local_token(state_dir)


def on_loopback(url: str) -> bool:
    """Whether ``url`` names a server on this machine's loopback (one that may take the local
    credential: a replica of the state directory, say)."""
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


class Client:
    """A small JSON client for one server. Raises baepo errors, never library ones."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, token: str | None = None) -> None:
        """``token`` is sent as ``Authorization: Bearer``; None: the configured API token
        (``configured_token``); empty: none."""
        self.base_url = base_url.rstrip("/")
        self.token = token if token is not None else configured_token()
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"bad server URL {base_url!r}",
                problems=[Problem("BAEPO_SERVER", "expected http://HOST:PORT")],
            )
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self.server_info: dict[str, Any] | None = None
        """What the server wrote in its state directory (``server.json``), when found there."""

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def healthy(self) -> bool:
        try:
            self._request("GET", "/api/v1/healthz", timeout=2.0)
        except BaepoError:
            return False
        return True

    def get(self, path: str, **params: Any) -> Any:
        return self._request("GET", _with_query(path, params))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", path, body)

    def delete(self, path: str) -> Any:
        return self._request("DELETE", path)

    def stream_lines(self, path: str, **params: Any) -> Iterator[str]:
        """Lines of a streamed text answer, as they arrive."""
        conn = self._connect(timeout=None)
        try:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            conn.request("GET", self._prefix + _with_query(path, params), headers=headers)
            response = conn.getresponse()
            if response.status >= 400:
                raise _error_from(response.status, response.read())
            while line := response.readline():
                yield line.decode(errors="replace").rstrip("\n")
        except (OSError, http.client.HTTPException) as exc:
            raise ExternalError(f"lost the baepo server at {self.base_url}: {exc}") from exc
        finally:
            conn.close()

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 0
    ) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):  # a kept-alive connection the server closed is retried once
            if self._conn is None:
                self._conn = self._connect(timeout or self.timeout)
            # A kept-alive connection keeps the timeout of the request that opened it (the
            # short health check's, say): set this request's own.
            self._conn.timeout = timeout or self.timeout
            if self._conn.sock is not None:
                self._conn.sock.settimeout(self._conn.timeout)
            try:
                self._conn.request(method, self._prefix + path, payload, headers)
                response = self._conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 1 and isinstance(exc, http.client.RemoteDisconnected):
                    continue
                raise ExternalError(
                    f"cannot reach the baepo server at {self.base_url}: {exc}",
                    hint="check it with baepo server status",
                ) from exc
            if response.will_close:
                self.close()
            if response.status >= 400:
                raise _error_from(response.status, data)
            return json.loads(data) if data else None
        raise AssertionError("unreachable")


def _with_query(path: str, params: dict[str, Any]) -> str:
    clean = {
        k: (str(v).lower() if isinstance(v, bool) else v)
        for k, v in params.items()
        if v is not None
    }
    return f"{path}?{urlencode(clean)}" if clean else path


def _error_from(status: int, data: bytes) -> BaepoError:
    try:
        body = json.loads(data)
        if not isinstance(body, dict):
            raise ValueError(body)
    except ValueError:
        body = {"detail": data[:500].decode(errors="replace")}
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    hint = body.get("hint")
    if status in (400, 422):
        problems = [
            Problem(path=str(p.get("path", "")), message=str(p.get("message", "")),
                    line=p.get("line"))
            for p in body.get("problems", [])
        ]  # fmt: skip
        return ConfigError(detail, problems=problems, hint=hint)
    if status == 401:
        return AuthError(detail, hint=hint)
    if status == 403:
        return ForbiddenError(detail, hint=hint)
    if status == 404:
        return NotFoundError(detail, hint=hint)
    if status == 409:
        return StateError(detail, hint=hint)
    return ExternalError(f"server error {status}: {detail}", hint=hint)


def running_server(state_dir: Path) -> dict[str, Any] | None:
    """The server of ``state_dir`` if one answers, else None."""
    info = discovery.live_server(state_dir)
    if info and info.get("url") and _answers(str(info["url"])):
        return info
    return None


def _answers(url: str) -> bool:
    client = Client(url)
    try:
        return client.healthy()
    finally:
        client.close()


def start_server(
    state_dir: Path,
    *,
    database_url: str | None = None,
    extra_args: Sequence[str] = (),
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Start a background server for ``state_dir`` (apps in ``workdir``) and wait until it
    (or the server another command started at the same moment, which then holds the lock)
    answers."""
    statedir.create(state_dir)
    argv = python_module_argv(
        "baepo", "server", "start", "--foreground", "--state-dir", str(state_dir)
    )
    if database_url:
        argv += ["--database-url", database_url]
    if workdir is not None:
        argv += ["--workdir", str(workdir)]
    argv += extra_args
    pid = spawn_detached(argv, env=dict(os.environ), output=state_dir / "server.log")
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    exited_at: float | None = None
    while time.monotonic() < deadline:
        if exited_at is None and not pid_alive(pid):
            exited_at = time.monotonic()
        info = discovery.live_server(state_dir)
        # Our own server, or (once ours exited, having lost the lock) the one that won it. A
        # replica on a shared database keeps running beside the others: wait for its record.
        ours = info is not None and info.get("pid") == pid
        mine_or_winner = ours or exited_at is not None
        if info and info.get("url") and mine_or_winner and _answers(str(info["url"])):
            return info
        if exited_at is not None:
            _raise_refusal(state_dir, pid)
        # Ours exited: wait only for another server that is starting (it wrote its pid into
        # the lock file; allow a moment for that write after it took the lock).
        if exited_at is not None and info is None and time.monotonic() - exited_at > 1.0:
            break
        time.sleep(0.05)
    raise ExternalError(
        f"the baepo server did not start: {_tail(state_dir / 'server.log') or 'no output'}",
        hint=f"see {state_dir / 'server.log'}",
    )


_ERRORS: dict[int, type[BaepoError]] = {
    cls.exit_code: cls for cls in (ConfigError, NotFoundError, StateError, ExternalError)
}


def _raise_refusal(state_dir: Path, pid: int) -> None:
    """Raise again the error the server ``pid`` refused to start with, if it left one in the
    lock file (``api.discovery.error_record``)."""
    record = discovery.read_record(state_dir / discovery.LOCK_FILE) or {}
    error = record.get("error")
    if record.get("pid") != pid or not isinstance(error, dict):
        return
    cls = _ERRORS.get(int(error.get("exit_code", 0)), BaepoError)
    raise cls(f"the baepo server did not start: {error.get('message')}", hint=error.get("hint"))


def connect(
    state_dir: Path,
    *,
    start: bool = True,
    database_url: str | None = None,
    workdir: Path | None = None,
) -> Client:
    """A client for the server of ``state_dir``, starting one if needed and allowed (with
    ``workdir`` as the app's folder)."""
    url = os.environ.get("BAEPO_SERVER")
    if url:
        token = (credential(state_dir) or "") if on_loopback(url) else None
        return Client(url, token=token)
    info = discovery.live_server(state_dir)
    if info and info.get("url"):
        client = Client(str(info["url"]), token=credential(state_dir) or "")
        if client.healthy():
            client.server_info = info
            return client
        client.close()
    if not start:
        raise ExternalError(
            f"no baepo server runs for {state_dir}",
            hint="start one with baepo server start (commands start it when needed)",
        )
    info = start_server(state_dir, database_url=database_url, workdir=workdir)
    client = Client(str(info["url"]), token=credential(state_dir) or "")
    client.server_info = info
    return client


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])
