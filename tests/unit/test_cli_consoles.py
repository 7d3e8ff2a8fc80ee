"""Every console of the CLI prints strings as written: markup is only read where a call asks
for it (``markup=True``) over text it escaped, so a user's `[/]` cannot break a command."""

from __future__ import annotations

import importlib
import pkgutil

from rich.console import Console

import baepo.cli
from baepo.cli import render


def test_no_cli_console_reads_markup_by_default() -> None:
    consoles: dict[str, Console] = {}
    for module_info in pkgutil.iter_modules(baepo.cli.__path__):
        module = importlib.import_module(f"baepo.cli.{module_info.name}")
        for name, value in vars(module).items():
            if isinstance(value, Console):
                consoles[f"{module_info.name}.{name}"] = value
    assert len(consoles) >= 15, consoles
    reading = [name for name, console in consoles.items() if console._markup]
    assert reading == []


def test_tables_show_brackets_even_on_a_console_that_reads_markup() -> None:
    console = Console(width=200, record=True, color_system=None)
    text = "[/] [bold]x[/bold] [red]"
    revision = {
        "number": 1,
        "version": text,
        "rollout": None,
        "message": text,
        "created_by": text,
        "created_at": None,
    }
    console.print(render.history_table([revision]))
    console.print(
        render.instances_table(
            [
                {
                    "id": text,
                    "revision": 1,
                    "address": text,
                    "phase": text,
                    "ready": True,
                    "restarts": 0,
                    "message": text,
                }
            ]
        )
    )
    shown = console.export_text()
    assert shown.count(text) == 7, shown
