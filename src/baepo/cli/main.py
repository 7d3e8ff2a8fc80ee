"""Placeholder entry point; replaced by the Typer app."""


def run() -> None:
    raise SystemExit(0)
