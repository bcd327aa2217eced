"""Docker tests: a real engine, the course's base image, and a check that nothing is left behind."""

from __future__ import annotations

import uuid

import pytest

from grader.config import Settings
from grader.engine import LABEL_INSTANCE, Engine

# Only what this test session created is checked: other graders may share the engine.
INSTANCE = f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> Settings:
    # Short waits keep failing cases quick; builds keep the production timeout unless a test says.
    return Settings(work_dir=tmp_path_factory.mktemp("work"), stop_timeout_s=3, ready_timeout_s=20,
                    instance=INSTANCE)


@pytest.fixture(scope="session")
def engine(settings) -> Engine:
    return Engine.from_settings(settings)


def leftovers(engine: Engine) -> list[str]:
    """Containers and images this test session's grader created and did not remove."""
    flt = {"label": f"{LABEL_INSTANCE}={INSTANCE}"}
    found = [f"container {c.name}" for c in engine.client.containers.list(all=True, filters=flt)]
    found += [f"image {i.tags or i.id}" for i in engine.client.images.list(filters=flt)]
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind(engine):
    yield
    assert leftovers(engine) == []
