"""The store: SQLAlchemy models, repositories and Alembic migrations. Only here is SQL."""
