"""Database backups through the real CLI and server: a real SQLite file and a real PostgreSQL
database are backed up, changed (rows and schema), restored and compared row by row; only the
newest ``keep`` backups stay; a failing backup is recorded as failed without its URL."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import postgres
import psycopg
from harness import SampleProject

ROWS = [(1, "alice", 10.5), (2, "bob", None), (3, "carol ü", -3.25)]


def with_backup(project: SampleProject, section: str) -> None:
    project.write("1.0.0", replicas=1)
    project.spec.write_text(project.spec.read_text() + section)


def sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        found = {t: list(conn.execute(f'SELECT * FROM "{t}" ORDER BY 1')) for t in sorted(tables)}
        found["_schema"] = sorted(conn.execute("SELECT type, name, sql FROM sqlite_master"))
    conn.close()
    return found


def backups(project: SampleProject) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(project.ok("backup", "list", "-o", "json"))
    return found


def test_sqlite_backup_and_restore(project: SampleProject) -> None:
    db = project.root / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)")
        conn.executemany("INSERT INTO people VALUES (?, ?, ?)", ROWS)
        conn.execute("INSERT INTO notes VALUES (1, x'00ff10')")
    conn.close()
    original = sqlite_rows(db)
    with_backup(project, "backup: {kind: sqlite, path: app.db}\n")

    taken = json.loads(project.ok("backup", "create", "-r", "before the change", "-o", "json"))
    assert taken["status"] == "ok" and taken["size_bytes"] > 0 and len(taken["sha256"]) == 64
    assert Path(taken["location"]).is_file()
    assert Path(taken["location"]).is_relative_to(project.state_dir / "backups" / "sample")

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE people SET name = 'mallory' WHERE id = 1")
        conn.execute("DELETE FROM people WHERE id = 2")
        conn.execute("ALTER TABLE people ADD COLUMN extra TEXT")
        conn.execute("DROP TABLE notes")
        conn.execute("CREATE TABLE newer (x INTEGER)")
    conn.close()
    assert sqlite_rows(db) != original

    refused = subprocess.run(
        [sys.executable, "-m", "baepo", "backup", "restore", str(taken["id"])],
        cwd=project.root,
        env=project.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 5 and "--yes" in refused.stderr, refused.stderr
    assert sqlite_rows(db) != original

    said = project.ok("backup", "restore", str(taken["id"]), "--yes")
    assert f"restored backup {taken['id']}" in said
    restored = sqlite_rows(db)
    for table, rows in original.items():
        assert len(restored[table]) == len(rows), table
        for got, want in zip(restored[table], rows, strict=True):
            assert got == want, table
    assert restored == original
    assert [b["id"] for b in backups(project)] == [taken["id"]]
    assert "before the change" in project.ok("backup", "list")


def pg_conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def pg_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(pg_conninfo(url)) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' ORDER BY 1"
            )
        ]
        found = {t: list(conn.execute(f'SELECT * FROM "{t}" ORDER BY 1')) for t in tables}
        found["_columns"] = list(
            conn.execute(
                "SELECT table_name, column_name, data_type, is_nullable "
                "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
            )
        )
    return found


def test_postgres_backup_and_restore(
    project: SampleProject, pg_server: postgres.PostgresServer
) -> None:
    url = pg_server.create_database("backup")
    with psycopg.connect(pg_conninfo(url)) as conn:
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score NUMERIC)")
        conn.execute(
            "CREATE TABLE orders (id SERIAL PRIMARY KEY, person INTEGER REFERENCES people(id), "
            "total NUMERIC NOT NULL, placed TIMESTAMPTZ DEFAULT now())"
        )
        for row in ROWS:
            conn.execute("INSERT INTO people VALUES (%s, %s, %s)", row)
        conn.execute("INSERT INTO orders (person, total) VALUES (1, 9.99), (3, 120)")
    original = pg_rows(url)
    project.env["APP_DATABASE_URL"] = url
    project.env["BAEPO_ALLOWED_SECRET_ENV"] = "APP_DATABASE_URL"
    with_backup(project, "backup: {kind: postgres, url_env: APP_DATABASE_URL}\n")

    taken = json.loads(project.ok("backup", "create", "-o", "json"))
    assert taken["status"] == "ok" and taken["kind"] == "postgres" and taken["size_bytes"] > 0

    with psycopg.connect(pg_conninfo(url)) as conn:
        conn.execute("UPDATE people SET name = 'mallory' WHERE id = 1")
        conn.execute("DELETE FROM orders WHERE person = 3")
        conn.execute("DELETE FROM people WHERE id = 3")
        conn.execute("ALTER TABLE people ADD COLUMN extra TEXT")
        conn.execute("ALTER TABLE orders DROP COLUMN placed")
        conn.execute("CREATE TABLE newer (x INTEGER)")
    assert pg_rows(url) != original

    project.ok("backup", "restore", str(taken["id"]), "--yes")
    restored = pg_rows(url)
    # pg_restore --clean drops and recreates what the dump holds; tables made later stay
    assert set(restored) == {*original, "newer"}
    restored["_columns"] = [c for c in restored["_columns"] if c[0] != "newer"]
    for table, rows in original.items():
        assert len(restored[table]) == len(rows), table
        for got, want in zip(restored[table], rows, strict=True):
            assert got == want, table


def test_keep_rotates_old_backups(project: SampleProject) -> None:
    db = project.root / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()
    with_backup(project, "backup: {kind: sqlite, path: app.db, keep: 2, dir: saved}\n")
    taken = [json.loads(project.ok("backup", "create", "-o", "json")) for _ in range(3)]
    assert all(Path(t["location"]).parent == project.root / "saved" for t in taken)
    assert [b["id"] for b in backups(project)] == [taken[1]["id"], taken[2]["id"]]
    assert not Path(taken[0]["location"]).exists()
    assert sorted(p.name for p in (project.root / "saved").iterdir()) == sorted(
        Path(t["location"]).name for t in taken[1:]
    )
    with Path(taken[2]["location"]).open("ab") as tampered:
        tampered.write(b"garbage")
    refused = project.baepo("backup", "restore", str(taken[2]["id"]), "--yes")
    assert refused.returncode == 5 and "changed since it was taken" in refused.stderr


def test_failed_backup_is_recorded_without_the_url(project: SampleProject) -> None:
    secret = "s3cr3t-pa55"
    url = f"postgresql+psycopg://someone:{secret}@127.0.0.1:1/nowhere"
    project.env["APP_DATABASE_URL"] = url
    project.env["BAEPO_ALLOWED_SECRET_ENV"] = "APP_DATABASE_URL"
    with_backup(project, "backup: {kind: postgres, url_env: APP_DATABASE_URL, timeout: 30s}\n")

    failed = project.baepo("backup", "create")
    assert failed.returncode != 0
    assert "APP_DATABASE_URL" in failed.stderr, failed.stderr
    assert secret not in failed.stdout + failed.stderr
    [record] = backups(project)
    assert record["status"] == "failed" and "APP_DATABASE_URL" in record["error"]
    assert secret not in json.dumps(record)
    listed = project.ok("backup", "list")
    assert "failed" in listed and secret not in listed


COPY = "import os, shutil, sys; shutil.copy({src}, {dst})"


def test_command_backup_gets_its_file(project: SampleProject) -> None:
    data = project.root / "data.txt"
    data.write_text("version one\n")
    create = [
        sys.executable,
        "-c",
        COPY.format(src="'data.txt'", dst="os.environ['BAEPO_BACKUP_FILE']"),
    ]
    restore = [
        sys.executable,
        "-c",
        COPY.format(src="os.environ['BAEPO_BACKUP_FILE']", dst="'data.txt'"),
    ]
    section = {"kind": "command", "create": create, "restore": restore}
    with_backup(project, "backup: " + json.dumps(section) + "\n")
    taken = json.loads(project.ok("backup", "create", "-o", "json"))
    assert Path(taken["location"]).read_text() == "version one\n"
    data.write_text("version two\n")
    project.ok("backup", "restore", str(taken["id"]), "--yes")
    assert data.read_text() == "version one\n"
    missing = project.baepo("backup", "restore", "999", "--yes")
    assert missing.returncode == 4, missing.stderr


def test_roles_deployer_backs_up_only_admin_restores(project: SampleProject) -> None:
    db = project.root / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()
    with_backup(project, "backup: {kind: sqlite, path: app.db}\n")
    project.ok("backup", "list")  # starts the server
    admin = project.ok("token", "create", "--name", "root", "--role", "admin", "--env", "*")
    deployer = project.ok(
        "token", "create", "--name", "ci", "--role", "deployer", "--env", "default"
    )
    viewer = project.ok("token", "create", "--name", "eye", "--role", "viewer", "--env", "default")
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")

    project.env["BAEPO_TOKEN"] = viewer.strip()
    assert project.ok("backup", "list", "-o", "json").strip() == "[]"
    assert project.baepo("backup", "create").returncode == 3
    project.env["BAEPO_TOKEN"] = deployer.strip()
    taken = json.loads(project.ok("backup", "create", "-o", "json"))
    assert taken["created_by"] == "ci"  # the token's name
    denied = project.baepo("backup", "restore", str(taken["id"]), "--yes")
    assert denied.returncode == 3 and "admin" in denied.stderr, denied.stderr
    project.env["BAEPO_TOKEN"] = admin.strip()
    project.ok("backup", "restore", str(taken["id"]), "--yes")
