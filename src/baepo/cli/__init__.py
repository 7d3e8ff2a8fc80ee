"""The ``baepo`` command line (Typer + Rich), a client of the REST API."""
