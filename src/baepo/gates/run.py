"""Running one gate: a check (a command or an HTTP probe) or a hook command.

Commands run without a shell through ``shell.process.run_command``, in the spec's folder,
with the server's environment, the app's ``run.env``, the gate's own ``env`` and the
release's ``BAEPO_*`` variables. Callers: ``controller.gates``.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import httpx

from baepo.errors import BaepoError
from baepo.shell import accounts, statedir
from baepo.shell.process import run_command
from baepo.spec.gates import CheckSpec, HttpCheckSpec

OUTPUT_LIMIT = 16 * 1024
_ENV_PLACEHOLDER = re.compile(r"\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class GateResult:
    """How one gate ended: passed or not, its exit code (commands), output and a reason."""

    passed: bool
    message: str
    output: str = ""
    exit_code: int | None = None


def release_env(
    app: str, env: str, revision: int, version: str, previous: int | None
) -> dict[str, str]:
    """The ``BAEPO_*`` variables every hook, check and migration command gets."""
    return {
        "BAEPO_APP": app,
        "BAEPO_ENV": env,
        "BAEPO_REVISION": str(revision),
        "BAEPO_VERSION": version,
        "BAEPO_PREVIOUS_REVISION": "" if previous is None else str(previous),
    }


async def run_argv(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    user: str | None = None,
) -> GateResult:
    """Run a command as the spec's ``run.user`` (see ``accounts``); it passes when it exits 0
    within ``timeout``."""
    try:
        done = await run_command(
            argv,
            cwd=cwd,
            env={**accounts.inherited_environment(os.environ), **env},
            timeout=timeout,
            output_limit=OUTPUT_LIMIT,
            account=accounts.run_as(user),
            umask=statedir.CHILD_UMASK,
        )
    except BaepoError as exc:
        return GateResult(False, str(exc))
    if done.timed_out:
        return GateResult(
            False, f"{argv[0]} took longer than {timeout:g}s", done.output, done.exit_code
        )
    if done.exit_code != 0:
        return GateResult(
            False, f"{argv[0]} exited with {done.exit_code}", done.output, done.exit_code
        )
    return GateResult(True, f"{argv[0]} exited with 0", done.output, 0)


def _fill(text: str) -> str:
    """``{{env.NAME}}`` replaced by the server's variable NAME (empty when unset)."""
    return _ENV_PLACEHOLDER.sub(lambda m: os.environ.get(m.group(1), ""), text)


def _refused(http: HttpCheckSpec, allowed_env: Collection[str]) -> list[str]:
    """The ``{{env.NAME}}`` of the probe that name a variable an admin did not allow."""
    texts = [http.url, *http.headers.values()]
    return sorted({n for t in texts for n in _ENV_PLACEHOLDER.findall(t)} - set(allowed_env))


async def probe(
    http: HttpCheckSpec, *, timeout: float, allowed_env: Collection[str] = frozenset()
) -> GateResult:
    """An HTTP probe: passes on an expected status (any 2xx by default) and body text.
    ``{{env.NAME}}`` may only name the server variables in ``allowed_env``."""
    refused = _refused(http, allowed_env)
    if refused:
        return GateResult(
            False,
            f"the server does not allow specs to read its environment variable(s) "
            f"{', '.join(refused)} (baepo server start --allow-secret-env NAME)",
        )
    url = _fill(http.url)
    headers = {name: _fill(value) for name, value in http.headers.items()}
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            answer = await client.request(http.method, url, headers=headers)
    except httpx.HTTPError as exc:
        return GateResult(False, f"{http.method} {http.url} failed: {type(exc).__name__}")
    preview = answer.text[:OUTPUT_LIMIT]
    expected = http.expect_status or list(range(200, 300))
    if answer.status_code not in expected:
        return GateResult(False, f"{http.method} {http.url} answered {answer.status_code}", preview)
    if http.contains is not None and http.contains not in answer.text:
        return GateResult(False, f"the answer of {http.url} lacks {http.contains!r}", preview)
    return GateResult(True, f"{http.method} {http.url} answered {answer.status_code}", preview)


async def run_check(
    check: CheckSpec,
    *,
    cwd: str,
    env: Mapping[str, str],
    user: str | None = None,
    allowed_env: Collection[str] = frozenset(),
) -> GateResult:
    """Run a check, retrying it ``retries`` times ``retry_interval`` apart."""
    result = GateResult(False, "the check has neither a command nor an http probe")
    for attempt in range(check.retries + 1):
        if attempt:
            await asyncio.sleep(check.retry_interval)
        if check.command is not None:
            result = await run_argv(
                check.command, cwd=cwd, env=env, timeout=check.timeout, user=user
            )
        elif check.http is not None:
            result = await probe(check.http, timeout=check.timeout, allowed_env=allowed_env)
        if result.passed:
            return result
    return result
