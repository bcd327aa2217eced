"""Shared fixtures: paths to the real fixture submissions, and a real engine for docker tests."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE_REPO = FIXTURES / "reference"
REFERENCE_SOURCE = REFERENCE_REPO / "counter-backend"
BROKEN = FIXTURES / "broken"


@pytest.fixture(scope="session")
def reference_source() -> Path:
    return REFERENCE_SOURCE
