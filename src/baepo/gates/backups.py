"""Taking and restoring database backups of an app: SQLite, PostgreSQL or custom commands.

SQLite backups are consistent copies made with the ``sqlite3`` backup API; PostgreSQL ones
come from ``pg_dump --format=custom`` and go back with ``pg_restore``; the ``command`` kind
runs the spec's ``create``/``restore`` commands with ``BAEPO_BACKUP_FILE`` set. Every run is
recorded as a ``backup`` gate run and a :class:`Backup`; only the newest ``keep`` good backups
of an app+environment are kept. Database URLs never reach messages or records: they name the
variable instead. ``pg_dump``, ``pg_restore`` and the commands run as the spec's ``run.user``
(they get the spec's environment): when that is another account, they write and read the
backup file in a private staging folder of that account, and the server moves it in and out
of the backup folder (in the state directory by default, which that account cannot enter).
Callers: ``api.backup_routes`` and ``controller.gates`` (before migrations).
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import hashlib
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from baepo.core.model import Backup, GatePhase, GateRun
from baepo.core.ports import Store
from baepo.errors import BaepoError, ExternalError, StateError
from baepo.shell import accounts, statedir
from baepo.shell.accounts import Account
from baepo.shell.process import run_command
from baepo.spec.backup import BackupSpec

OUTPUT_LIMIT = 16 * 1024
_SUFFIX = {"sqlite": ".sqlite3", "postgres": ".pgdump", "command": ".backup"}


def _now() -> datetime:
    return datetime.now(UTC)


def backup_dir(spec: BackupSpec, *, app: str, env: str, spec_dir: str, state_dir: Path) -> Path:
    """Where backups of app+env are written: ``spec.dir`` or the state folder's ``backups/``."""
    if spec.dir is not None:
        return Path(spec_dir) / spec.dir
    return Path(state_dir) / "backups" / app / env


def pg_tool(name: str) -> str:
    """The path of ``pg_dump``/``pg_restore``: the newest Debian PostgreSQL one, else PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if (Path(bindir) / name).exists():
            return str(Path(bindir) / name)
    found = shutil.which(name)
    if found is None:
        raise ExternalError(
            f"{name} is not installed", hint="install the postgresql client package"
        )
    return found


def _libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as libpq understands it."""
    return re.sub(r"^postgres(ql)?\+[a-z0-9_]+://", "postgresql://", url)


def _database_url(spec: BackupSpec, env_vars: Mapping[str, str]) -> str:
    name = spec.url_env
    if not name:
        raise StateError("the postgres backup has no url_env", hint="set backup.url_env")
    url = env_vars.get(name)  # run.env, secrets, and the server variables an admin allowed
    if not url:
        raise StateError(
            f"the database URL variable {name} is not set",
            hint=f"store it as a secret, or set {name} in the server's environment and allow "
            f"it (baepo server start --allow-secret-env {name})",
        )
    return url


def _redact(text: str, secret: str | None) -> str:
    if not secret:
        return text
    for form in {secret, _libpq_url(secret)}:
        text = text.replace(form, "<" + "redacted" + ">")
    return text


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy one SQLite database into another with the online backup API."""
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _run(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    secret: str | None,
    what: str,
    account: Account | None,
) -> str:
    """Run a command as ``account``; its output (redacted), or BaepoError saying how it
    failed."""
    try:
        done = await run_command(
            argv,
            cwd=cwd,
            env={**accounts.inherited_environment(os.environ), **env},
            timeout=timeout,
            output_limit=OUTPUT_LIMIT,
            account=account,
            umask=statedir.CHILD_UMASK,
        )
    except BaepoError as exc:
        raise ExternalError(_redact(str(exc), secret)) from None
    output = _redact(done.output, secret)
    if done.timed_out:
        raise ExternalError(f"{what} took longer than {timeout:g}s", hint=output[-2000:] or None)
    if done.exit_code != 0:
        raise ExternalError(
            f"{what} exited with {done.exit_code}", hint=output.strip()[-2000:] or None
        )
    return output


@contextmanager
def _staging(account: Account | None) -> Iterator[Path | None]:
    """A private folder that ``account`` owns, removed afterwards; None without an account."""
    if account is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="baepo-backup-"))
    try:
        os.chown(folder, account.uid, account.gid)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _create(
    spec: BackupSpec,
    target: Path,
    *,
    spec_dir: str,
    env_vars: Mapping[str, str],
    account: Account | None,
) -> str:
    if spec.kind == "sqlite":
        if not spec.path:
            raise StateError("the sqlite backup has no path", hint="set backup.path")
        source = Path(spec_dir) / spec.path
        if not source.exists():
            raise StateError(f"the SQLite database {spec.path} does not exist")
        try:
            await asyncio.wait_for(
                asyncio.to_thread(_sqlite_copy, source, target), timeout=spec.timeout
            )
        except sqlite3.Error as exc:
            raise ExternalError(f"cannot back up {spec.path}: {exc}") from None
        return ""
    if spec.kind == "postgres":
        url = _database_url(spec, env_vars)
        argv = [pg_tool("pg_dump"), "--format=custom", "--file", str(target), _libpq_url(url)]
        return await _run(
            argv,
            cwd=spec_dir,
            env=env_vars,
            timeout=spec.timeout,
            secret=url,
            what=f"pg_dump of the database in {spec.url_env}",
            account=account,
        )
    if not spec.create:
        raise StateError("the command backup has no create command", hint="set backup.create")
    return await _run(
        spec.create,
        cwd=spec_dir,
        env={**env_vars, "BAEPO_BACKUP_FILE": str(target)},
        timeout=spec.timeout,
        secret=None,
        what=spec.create[0],
        account=account,
    )


async def _restore(
    spec: BackupSpec,
    source: Path,
    *,
    spec_dir: str,
    env_vars: Mapping[str, str],
    account: Account | None,
) -> str:
    if spec.kind == "sqlite":
        if not spec.path:
            raise StateError("the sqlite backup has no path", hint="set backup.path")
        target = Path(spec_dir) / spec.path
        try:
            await asyncio.wait_for(
                asyncio.to_thread(_sqlite_copy, source, target), timeout=spec.timeout
            )
        except sqlite3.Error as exc:
            raise ExternalError(f"cannot restore {spec.path}: {exc}") from None
        return ""
    if spec.kind == "postgres":
        url = _database_url(spec, env_vars)
        argv = [
            pg_tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--dbname",
            _libpq_url(url),
            str(source),
        ]
        return await _run(
            argv,
            cwd=spec_dir,
            env=env_vars,
            timeout=spec.timeout,
            secret=url,
            what=f"pg_restore into the database in {spec.url_env}",
            account=account,
        )
    if not spec.restore:
        raise StateError("the command backup has no restore command", hint="set backup.restore")
    return await _run(
        spec.restore,
        cwd=spec_dir,
        env={**env_vars, "BAEPO_BACKUP_FILE": str(source)},
        timeout=spec.timeout,
        secret=None,
        what=spec.restore[0],
        account=account,
    )


def _failure_text(exc: BaepoError) -> str:
    return exc.message + (f": {exc.hint}" if exc.hint else "")


def rotate(store: Store, app: str, env: str, keep: int) -> list[Backup]:
    """Delete the files and records of good backups older than the newest ``keep``."""
    good = [b for b in store.list_backups(app, env, limit=10_000) if b.status == "ok"]
    good.sort(key=lambda b: (b.created_at, b.id))
    dropped = good[: max(0, len(good) - keep)]
    for old in dropped:
        Path(old.location).unlink(missing_ok=True)
        store.delete_backup(old.id)
    return dropped


def _start(
    store: Store,
    app: str,
    env: str,
    stage: str,
    name: str,
    actor: str,
    revision: int | None,
    started: datetime,
    backup_id: int | None = None,
) -> GateRun:
    """The gate run recording one backup or restore, stored as running."""
    return store.add_gate_run(
        GateRun(
            app=app,
            env=env,
            kind="backup",
            stage=stage,
            name=name,
            phase=GatePhase.RUNNING,
            started_at=started,
            actor=actor,
            revision=revision,
            detail={"backup_id": backup_id} if backup_id is not None else {},
        )
    )


def _finish(
    store: Store, run: GateRun, phase: GatePhase, message: str, output: str, backup_id: int
) -> None:
    store.save_gate_run(
        dataclasses.replace(
            run,
            phase=phase,
            finished_at=_now(),
            message=message,
            output=output,
            detail={"backup_id": backup_id},
        )
    )


async def take_backup(
    store: Store,
    spec: BackupSpec,
    *,
    app: str,
    env: str,
    spec_dir: str,
    state_dir: Path,
    actor: str,
    reason: str,
    revision: int | None = None,
    env_vars: Mapping[str, str] = {},
    user: str | None = None,
) -> Backup:
    """Take one backup and record it; raises BaepoError (after recording it failed).
    ``user`` is the spec's ``run.user``."""
    started = _now()
    folder = backup_dir(spec, app=app, env=env, spec_dir=spec_dir, state_dir=state_dir)
    name = f"{app}-{env}-{started.strftime('%Y%m%dT%H%M%S%fZ')}{_SUFFIX[spec.kind]}"
    target = folder / name
    run = _start(store, app, env, "create", spec.kind, actor, revision, started)
    backup = store.add_backup(
        Backup(
            app=app,
            env=env,
            kind=spec.kind,
            location=str(target),
            created_at=started,
            created_by=actor,
            status="running",
            revision=revision,
            reason=reason,
        )
    )
    output = ""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        account = accounts.run_as(user) if spec.kind != "sqlite" else None
        with _staging(account) as staging:
            written = target if staging is None else staging / name
            output = await _create(
                spec, written, spec_dir=spec_dir, env_vars=env_vars, account=account
            )
            if not written.is_file():
                raise ExternalError(f"the {spec.kind} backup wrote no file")
            if written != target:
                shutil.move(written, target)
                os.chown(target, os.geteuid(), os.getegid())
                target.chmod(0o600)
    except (BaepoError, OSError, TimeoutError) as exc:
        error = (
            exc
            if isinstance(exc, BaepoError)
            else ExternalError(
                f"the backup took longer than {spec.timeout:g}s"
                if isinstance(exc, TimeoutError)
                else f"cannot write the backup: {exc}"
            )
        )
        target.unlink(missing_ok=True)
        message = f"backup of {app} in {env} failed: {_failure_text(error)}"
        store.save_backup(dataclasses.replace(backup, status="failed", detail={"error": message}))
        _finish(store, run, GatePhase.FAILED, message, error.hint or "", backup.id)
        raise ExternalError(message, hint=error.hint) from None
    backup = store.save_backup(
        dataclasses.replace(
            backup,
            status="ok",
            size_bytes=target.stat().st_size,
            sha256=await asyncio.to_thread(_sha256, target),
        )
    )
    message = f"backup {backup.id} of {app} in {env}: {backup.size_bytes} bytes"
    _finish(store, run, GatePhase.PASSED, message, output, backup.id)
    rotate(store, app, env, spec.keep)
    return backup


async def restore_backup(
    store: Store,
    backup: Backup,
    spec: BackupSpec,
    *,
    spec_dir: str,
    env_vars: Mapping[str, str] = {},
    actor: str = "controller",
    user: str | None = None,
) -> None:
    """Put a good backup back into the live database; raises BaepoError when it cannot.
    ``user`` is the spec's ``run.user``."""
    if backup.status != "ok":
        raise StateError(f"backup {backup.id} is {backup.status}: it cannot be restored")
    if backup.kind != spec.kind:
        raise StateError(
            f"backup {backup.id} is a {backup.kind} backup but the spec's backup is {spec.kind}"
        )
    source = Path(backup.location)
    run = _start(
        store, backup.app, backup.env, "restore", spec.kind, actor, backup.revision, _now(),
        backup.id,
    )  # fmt: skip
    try:
        if not source.is_file():
            raise StateError(f"the file of backup {backup.id} is gone: {source}")
        if backup.sha256 and await asyncio.to_thread(_sha256, source) != backup.sha256:
            raise StateError(f"the file of backup {backup.id} changed since it was taken")
        account = accounts.run_as(user) if spec.kind != "sqlite" else None
        with _staging(account) as staging:
            readable = source
            if staging is not None and account is not None:
                readable = staging / source.name
                shutil.copyfile(source, readable)
                os.chown(readable, account.uid, account.gid)
            output = await _restore(
                spec, readable, spec_dir=spec_dir, env_vars=env_vars, account=account
            )
    except (BaepoError, TimeoutError) as exc:
        error = (
            exc
            if isinstance(exc, BaepoError)
            else ExternalError(f"the restore took longer than {spec.timeout:g}s")
        )
        message = f"restore of backup {backup.id} failed: {_failure_text(error)}"
        _finish(store, run, GatePhase.FAILED, message, "", backup.id)
        raise type(error)(message, hint=error.hint) from None
    _finish(store, run, GatePhase.PASSED, f"restored backup {backup.id}", output, backup.id)
