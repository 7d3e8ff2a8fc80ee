"""Entry point for ``python -m baepo``."""

from baepo.cli.main import run

run()
