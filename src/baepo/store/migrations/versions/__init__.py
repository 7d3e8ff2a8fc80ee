"""One Alembic revision per schema change, each tested on SQLite and PostgreSQL."""
