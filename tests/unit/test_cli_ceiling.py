"""`grader doctor`'s line about the build ceiling, read from cgroup trees laid out as the kernel
does (tests/fixtures/cgroup: v1 with one tree per controller, v2 unified with a systemd slice)."""

from __future__ import annotations

from grader.workbench import ceiling as _ceiling
from tests.conftest import FIXTURES

TREES = FIXTURES / "cgroup"


def test_cgroup_v1_ceiling_of_setups_engine_is_shown():
    assert _ceiling("/grader", TREES / "v1") == "memory ceiling 4.0 GiB, pids 2048"


def test_cgroup_v2_ceiling_of_a_systemd_slice_is_shown():
    assert _ceiling("/grader.slice", TREES / "v2") == "memory ceiling 4.0 GiB, pids 2048"


def test_a_slice_without_memory_max_is_called_out_as_no_ceiling():
    assert _ceiling("/grader.slice", TREES / "v2-unlimited").startswith("NO memory ceiling")


def test_an_invisible_or_unknown_cgroup_is_unknown_not_unlimited():
    assert _ceiling(None, TREES / "v1").startswith("ceiling unknown")
    assert _ceiling("/elsewhere", TREES / "v2").startswith("ceiling unknown")
