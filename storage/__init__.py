"""Persistence: SQLAlchemy 2 async models, repositories, engine set-up and Alembic migrations."""
