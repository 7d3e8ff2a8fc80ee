"""The CLI's side of the REST API, and the on-demand local server.

``connect`` finds the server of a state directory (``server.json``) and, for the local target,
starts one in the background when none answers, so a user never has to. Problem+json answers
become baepo errors again here. Callers: every CLI command that reads or changes state.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from baepo.errors import (
    BaepoError,
    ConfigError,
    ExternalError,
    NotFoundError,
    Problem,
    StateError,
)
from baepo.shell.process import pid_alive, python_module_argv, spawn_detached

SERVER_START_TIMEOUT = 30.0


def _read_server_file(state_dir: Path) -> dict[str, Any] | None:
    import json

    try:
        data = json.loads((state_dir / "server.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Client:
    """A thin JSON client for one server. Raises baepo errors, never httpx ones."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url
        # Plain HTTP needs no TLS context, which costs tens of ms at every CLI start.
        self.http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            verify=base_url.startswith("https://"),
            trust_env=False,
        )

    def healthy(self) -> bool:
        try:
            return self.http.get("/api/v1/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self._call("GET", path, params=clean)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, json=body)

    def stream_lines(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            with self.http.stream("GET", path, params=clean, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error_from(response)
                yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise ExternalError(f"lost the baepo server at {self.base_url}: {exc}") from exc

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ExternalError(
                f"cannot reach the baepo server at {self.base_url}: {exc}",
                hint="check it with baepo server status",
            ) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()


def _error_from(response: httpx.Response) -> BaepoError:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    detail = str(body.get("detail") or body.get("title") or f"HTTP {response.status_code}")
    hint = body.get("hint")
    status = response.status_code
    if status in (400, 422):
        problems = [
            Problem(path=str(p.get("path", "")), message=str(p.get("message", "")),
                    line=p.get("line"))
            for p in body.get("problems", [])
        ]  # fmt: skip
        return ConfigError(detail, problems=problems, hint=hint)
    if status == 404:
        return NotFoundError(detail, hint=hint)
    if status == 409:
        return StateError(detail, hint=hint)
    return ExternalError(f"server error {status}: {detail}", hint=hint)


def _healthy(url: str) -> bool:
    client = Client(url)
    try:
        return client.healthy()
    finally:
        client.close()


def running_server(state_dir: Path) -> dict[str, Any] | None:
    """The server of ``state_dir`` if one answers, else None."""
    info = _read_server_file(state_dir)
    if info and pid_alive(int(info.get("pid", 0))) and _healthy(str(info["url"])):
        return info
    return None


def start_server(state_dir: Path, *, database_url: str | None = None) -> dict[str, Any]:
    """Start a background server for ``state_dir`` and wait until it answers."""
    state_dir.mkdir(parents=True, exist_ok=True)
    argv = python_module_argv(
        "baepo", "server", "start", "--foreground", "--state-dir", str(state_dir)
    )
    if database_url:
        argv += ["--database-url", database_url]
    env = dict(os.environ)
    pid = spawn_detached(argv, env=env, output=state_dir / "server.log")
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        info = _read_server_file(state_dir)
        if info and info.get("pid") == pid and _healthy(str(info["url"])):
            return info
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    tail = _tail(state_dir / "server.log")
    raise ExternalError(
        f"the baepo server did not start: {tail or 'no output'}",
        hint=f"see {state_dir / 'server.log'}",
    )


def connect(state_dir: Path, *, start: bool = True, database_url: str | None = None) -> Client:
    """A client for the server of ``state_dir``, starting one if needed and allowed."""
    url = os.environ.get("BAEPO_SERVER")
    if url:
        return Client(url.rstrip("/"))
    info = _read_server_file(state_dir)
    if info and pid_alive(int(info.get("pid", 0))):
        client = Client(str(info["url"]))
        if client.healthy():
            return client
        client.close()
    if not start:
        raise ExternalError(
            f"no baepo server runs for {state_dir}",
            hint="start one with baepo server start (commands start it when needed)",
        )
    info = start_server(state_dir, database_url=database_url)
    return Client(str(info["url"]))


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])
