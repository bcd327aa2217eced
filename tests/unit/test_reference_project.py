"""The bundled reference counter-backend is itself a correct project: its own tests pass."""

import os
import subprocess
import sys

from tests.conftest import REFERENCE_SOURCE


def test_reference_project_own_tests_pass():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(REFERENCE_SOURCE)],
        cwd=REFERENCE_SOURCE, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REFERENCE_SOURCE / "src"), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout
