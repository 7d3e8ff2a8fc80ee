"""A release that migrates a real SQLite database, fails its canary and is rolled back; the
backup taken before the migration restores the data exactly, row by row and column by column.
Through the real CLI, server, router and app processes."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest
from harness import SampleProject, versions

pytestmark = pytest.mark.slow

MIGRATE_UP = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
with db:
    db.execute("ALTER TABLE items ADD COLUMN price INTEGER DEFAULT 0")
    db.execute("UPDATE items SET name = upper(name), price = id * 100")
    db.execute("DELETE FROM items WHERE id = 3")
"""

CANARY_FAILS = """
migrate:
  up: ["{python}", "migrate_up.py", "data.db"]
backup: {{kind: sqlite, path: data.db, before_migrate: true}}
analysis:
  smoke:
    metrics:
      - name: smoke-test
        provider: job
        job: {{command: ["{python}", "-c", "import sys; sys.exit(1)"]}}
        success_condition: result == 0
"""


def dump(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every column of the table and every row, in order."""
    with sqlite3.connect(path) as db:
        columns = db.execute("PRAGMA table_info(items)").fetchall()
        rows = db.execute("SELECT * FROM items ORDER BY id").fetchall()
    return columns, rows


def test_migrate_fail_roll_back_restore(project: SampleProject) -> None:
    database = project.root / "data.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note BLOB)")
        db.executemany(
            "INSERT INTO items VALUES (?, ?, ?)",
            [(1, "apple", b"\x00\x01"), (2, "pear", None), (3, "fig", b"seed")],
        )
    (project.root / "migrate_up.py").write_text(MIGRATE_UP)
    before = dump(database)

    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    try:
        project.write(
            "2.0.0", replicas=1,
            strategy="{canary: {steps: [{set_weight: 50}, {analysis: {templates: [smoke]}}]}}",
        )  # fmt: skip
        project.spec.write_text(
            project.spec.read_text() + CANARY_FAILS.format(python=sys.executable)
        )
        failed = project.baepo("deploy", "--wait", "--timeout", "90")
        assert failed.returncode == 6, (failed.stdout, failed.stderr)
        assert set(versions(project.port, 5)) == {"1.0.0"}
        migrated = dump(database)
        assert migrated != before and len(migrated[1]) == 2, migrated

        backups = json.loads(project.ok("backup", "list", "-o", "json"))
        assert [(b["kind"], b["status"], b["revision"]) for b in backups] == [
            ("sqlite", "ok", 2)
        ], backups
        ran = [
            (g["kind"], g["stage"], g["phase"])
            for g in json.loads(project.ok("gates", "2", "-o", "json"))
        ]
        assert ("migrate", "up", "passed") in ran, ran

        project.ok("backup", "restore", str(backups[0]["id"]), "--yes")
        assert dump(database) == before
    finally:
        project.baepo("down", "--wait", "--timeout", "30", timeout=60)
