"""Alembic's environment and the store's revisions (grader/store/migrate.py runs them)."""
