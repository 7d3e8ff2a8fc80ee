"""Alembic migrations of the store schema, shipped inside the package (no alembic.ini).

Run programmatically by ``store.migrate``; ``env.py`` is Alembic's entry point.
"""
