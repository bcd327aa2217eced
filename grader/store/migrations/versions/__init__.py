"""The store's revisions, one per schema version: "000N" makes version N (grader/store/migrate.py)."""
