"""Hand-built facts, shaped as the engine would report them, for tests of scoring and reports.

The Dockerfiles are the real reference fixtures, parsed by the real parser; only what Docker
would have observed (build, image, running container) is fabricated.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from grader.assignment import Assignment
from grader.dockerfile import parse_file
from grader.facts import (
    BuildFacts,
    ContentsFacts,
    ContextFacts,
    ImageFacts,
    ProbeResult,
    RuntimeFacts,
    SubmissionFacts,
    VariantFacts,
)

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "counter-backend"

MB = 1_000_000
# Plausible sizes: the single-stage image carries poetry and the build tools.
SIZES = {"single": 412 * MB, "multistage": 171 * MB, "nonroot": 172 * MB}
# uid the running process reports: root where the variant expects it, a system user otherwise.
UIDS = {"single": 0, "multistage": 0, "nonroot": 999}
IMAGE_USERS = {"single": "", "multistage": "", "nonroot": "app"}


def passing_probes(assignment: Assignment) -> list[ProbeResult]:
    """Every probe of the assignment answered exactly as expected."""
    return [
        ProbeResult(p.method, p.path, p.status, json.dumps(p.json), True, p.status, p.json,
                    content_type="application/json")
        for p in assignment.probes
    ]


def passing_runtime(assignment: Assignment, uid: int) -> RuntimeFacts:
    return RuntimeFacts(started=True, ready=True, ready_seconds=0.42,
                        probes=passing_probes(assignment), uid=uid, stop_seconds=0.31,
                        exit_code=0)


def passing_variant(name: str, assignment: Assignment, **changes: object) -> VariantFacts:
    """The reference Dockerfile of `name`, built and run as the engine would see it pass."""
    filename = assignment.variant(name).filename
    image_id = "sha256:" + name.encode().hex().ljust(64, "0")
    facts = VariantFacts(
        name=name,
        dockerfile_path=filename,
        found_by="name",
        parsed=parse_file(REFERENCE / filename, filename),
        build=BuildFacts(succeeded=True, seconds=37.25, exit_code=0, image_id=image_id),
        image=ImageFacts(image_id=image_id, size_bytes=SIZES[name], layer_count=11,
                         user=IMAGE_USERS[name],
                         entrypoint=["python", "-m", "counter_backend"], cmd=None,
                         exposed_ports=["8080/tcp"]),
        runtime=passing_runtime(assignment, UIDS[name]),
        context=ContextFacts(dockerignore=True, file_count=9, size_bytes=129_000),
        contents=ContentsFacts(),  # a clean final image: no poetry, no sources
        port_runtime=RuntimeFacts(started=True, ready=True, ready_seconds=0.4,
                                  probes=passing_probes(assignment)[:1], uid=UIDS[name]),
    )
    return replace(facts, **changes)


def passing_submission(assignment: Assignment, **variant_changes: VariantFacts) -> SubmissionFacts:
    """All three reference variants passing; pass name=VariantFacts to swap one in."""
    variants = {v.name: passing_variant(v.name, assignment) for v in assignment.variants}
    variants.update(variant_changes)
    return SubmissionFacts(repo=REFERENCE, variants=variants)
