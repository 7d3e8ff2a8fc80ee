"""The one error hierarchy of baepo.

Every adapter translates library exceptions (httpx, SQLAlchemy, OS errors) into these at its
boundary with ``raise ... from exc``. The CLI maps each class to one line, a hint and an exit
code; the API maps each class to a problem+json status.
"""

from __future__ import annotations

from dataclasses import dataclass


class BaepoError(Exception):
    """Base of every error baepo raises on purpose."""

    exit_code = 1
    http_status = 500
    title = "baepo error"
    label = "error"  # how the CLI's one line starts

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Problem:
    """One located problem in user input: a key path, an optional line, and what is wrong."""

    path: str
    message: str
    line: int | None = None
    source: str | None = None

    def render(self) -> str:
        where = self.source or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        prefix = f"{where}: " if where else ""
        loc = f"{self.path}: " if self.path else ""
        return f"{prefix}{loc}{self.message}"


class ConfigError(BaepoError):
    """User input (spec file, CLI argument, API body) is invalid. Nothing was applied."""

    exit_code = 2
    http_status = 422
    title = "invalid input"

    def __init__(
        self,
        message: str,
        *,
        problems: list[Problem] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems: list[Problem] = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = [self.message, *("  " + p.render() for p in self.problems)]
        return "\n".join(lines)


class NotFoundError(BaepoError):
    """A named thing (app, revision, rollout) does not exist."""

    exit_code = 4
    http_status = 404
    title = "not found"


class AuthError(BaepoError):
    """No valid API token where one is required (HTTP 401, exit code 3)."""

    exit_code = 3
    http_status = 401
    title = "authentication required"


class ForbiddenError(AuthError):
    """The caller's role does not allow this in this environment (HTTP 403, exit code 3)."""

    http_status = 403
    title = "forbidden"


class StateError(BaepoError):
    """The request conflicts with the current state (e.g. a rollout is already in progress)."""

    exit_code = 5
    http_status = 409
    title = "state conflict"


class ConflictError(StateError):
    """A compare-and-set write lost to another writer: read again and retry."""


class RolloutFailed(BaepoError):
    """A rollout ended failed, aborted or rolled back."""

    exit_code = 6
    http_status = 200
    title = "rollout failed"


class RolloutWaiting(BaepoError):
    """``--wait`` returned because the rollout waits for a person: an indefinite pause (a
    ``pause: {}`` step, blue-green without auto-promotion, an inconclusive analysis, ``baepo
    pause``) or an approval. Nothing failed; the rollout goes on after ``baepo promote``,
    ``resume`` or ``approve`` (exit code 8, as ``kubectl argo rollouts status`` returns at a
    pause)."""

    exit_code = 8
    http_status = 200
    title = "rollout waiting"
    label = "paused"


class ExternalError(BaepoError):
    """Something outside baepo (a process, the router, the server) did not do what was asked."""

    exit_code = 7
    http_status = 502
    title = "external failure"


class CommandFailed(ExternalError):
    """A command run by a Runner exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, output: str = "") -> None:
        super().__init__(f"command {argv[0]!r} exited with code {returncode}")
        self.argv = argv
        self.returncode = returncode
        self.output = output


class TransientError(ExternalError):
    """A failure worth retrying after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float = 1.0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.delay = delay
