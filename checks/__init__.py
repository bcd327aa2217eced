"""The course's checks: every requirement is a named, pure function of facts (see grader.checkapi).

Importing this package registers them; each module's messages are in `messages/<module>.toml`.
"""

from __future__ import annotations

# isort: off
# The re-exports come first: the check modules imported below take them from this package.
from grader.checkapi import (  # noqa: F401  (re-exported for the check modules)
    GLOBAL_CHECKS,
    VARIANT_CHECKS,
    Evidence,
    Outcome,
    failed,
    global_check,
    passed,
    skipped,
    variant_check,
)

# Importing the modules fills the registries.
from checks import build, entrypoint, http, hygiene, lint, policy, secrets, size, stages, user  # noqa: E402,F401
# isort: on
