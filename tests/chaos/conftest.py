"""The chaos tests share the e2e tests' own Redis database (an empty one, flushed afterwards)."""

from tests.e2e.test_service import broker_url  # noqa: F401 - a fixture, used by name
