"""Where the grader finds its checks: the plug-in package (`checks/`, the top-level folder the
product's layout requires) is found and imported by name, here and only here.

Why by name and not `from checks import ...` in the modules that need it: the check modules import
the grader's API (grader.checkapi, grader.dockerfile, ...), so a static import back from grader
made a hidden grader ↔ checks cycle, and path arithmetic (`grader/../checks`) found the data only
in a source checkout laid out like this one. `importlib.util.find_spec` locates the package's
folder without running it (no cycle at import time); `load()` imports it once, which fills the
registries in grader.checkapi.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from grader.errors import ConfigError

PACKAGE = "checks"


@lru_cache(maxsize=1)
def folder() -> Path:
    """The plug-in package's folder: its rubric files (`assignments/`) and catalogue (`messages/`)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the checks package `{PACKAGE}` is not installed (pip install -e . installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def load() -> ModuleType:
    """Imports the checks once; their decorators fill grader.checkapi's registries."""
    return importlib.import_module(PACKAGE)


def variant_checks() -> dict[str, Any]:
    from grader.checkapi import VARIANT_CHECKS

    load()
    return VARIANT_CHECKS


def global_checks() -> dict[str, Any]:
    from grader.checkapi import GLOBAL_CHECKS

    load()
    return GLOBAL_CHECKS


def build_hint() -> Callable[..., Any]:
    """The checks' reading of a failed build log (checks/hints.py): the verdict cache judges a
    failure the way the report does."""
    return importlib.import_module(f"{PACKAGE}.hints").build_hint
