"""Hand-built facts, shaped as the engine would report them, for tests of scoring and reports.

The Dockerfiles are the real reference fixtures, parsed by the real parser; only what Docker
would have observed (build, image, running container) is fabricated.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from grader.assignment import Assignment
from grader.dockerfile import ParsedDockerfile, parse_file
from grader.facts import (
    BuildFacts,
    ContentsFacts,
    ContextFacts,
    ImageFacts,
    LintFinding,
    PolicyFacts,
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
# What hadolint 2.15 reports on the reference Dockerfiles (tests/unit/test_lint.py runs it to
# keep this true): unpinned setuptools/wheel, as the course's recipe has them, and `USER app`.
_PIN = ("Pin versions in pip. Instead of `pip install <package>` use `pip install <package>==<version>` "
        "or `pip install --requirement <requirements file>`")
REFERENCE_LINT = {
    "single": [LintFinding("DL3013", "warning", 6, _PIN)],
    "multistage": [LintFinding("DL3013", "warning", 5, _PIN)],
    "nonroot": [LintFinding("DL3013", "warning", 5, _PIN),
                LintFinding("DL3066", "info", 21, "Non-numeric user-id may not be resolvable by host system")],
}

# The official python:3.11.6-slim-bookworm image's config Env and history, as `docker image
# inspect` / `docker history --no-trunc` show them: GPG_KEY is a public key id, not a secret.
BASE_ENV = ["PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
            "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D", "PYTHON_VERSION=3.11.6",
            "PYTHON_PIP_VERSION=23.2.1", "PYTHON_SETUPTOOLS_VERSION=65.5.1",
            "PYTHON_GET_PIP_URL=https://github.com/pypa/get-pip/raw/c6add47b0abf67511cdfb4734771cbab403af062/"
            "public/get-pip.py",
            "PYTHON_GET_PIP_SHA256=22b849a10f86f5ddf7ce148ca2a31214504ee6c83ef626840fab7b0d0b2f4ff5"]
BASE_HISTORY = [
    "/bin/sh -c #(nop) ADD file:a1398394375faab8dd9e1e8d584eea96c750fb57ae4ffd2b14624f1cf263561b in / ",
    '/bin/sh -c #(nop)  CMD ["bash"]',
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "RUN /bin/sh -c set -eux; apt-get update; apt-get install -y --no-install-recommends ca-certificates "
    "netbase tzdata ; rm -rf /var/lib/apt/lists/* # buildkit",
    "ENV GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D",
    "ENV PYTHON_VERSION=3.11.6",
    'RUN /bin/sh -c set -eux; wget -O python.tar.xz.asc "https://www.python.org/ftp/python/${PYTHON_VERSION%%[a-z]*}'
    '/Python-$PYTHON_VERSION.tar.xz.asc"; GNUPGHOME="$(mktemp -d)"; export GNUPGHOME; '
    'gpg --batch --keyserver hkps://keys.openpgp.org --recv-keys "$GPG_KEY"; # buildkit',
    "ENV PYTHON_PIP_VERSION=23.2.1",
    "ENV PYTHON_SETUPTOOLS_VERSION=65.5.1",
    'CMD ["python3"]',
]


def image_history(parsed: ParsedDockerfile) -> list[str]:
    """`docker history` of an image built from `parsed` with BuildKit, oldest first."""
    own = [f"RUN /bin/sh -c {' '.join(i.args)} # buildkit" if i.cmd == "RUN"
           else f"{i.cmd} {' '.join(i.args)}" for i in parsed.final.instructions]
    return BASE_HISTORY + own


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
    parsed = parse_file(REFERENCE / filename, filename)
    facts = VariantFacts(
        name=name,
        dockerfile_path=filename,
        found_by="name",
        parsed=parsed,
        lint=list(REFERENCE_LINT[name]),
        build=BuildFacts(succeeded=True, seconds=37.25, exit_code=0, image_id=image_id),
        image=ImageFacts(image_id=image_id, size_bytes=SIZES[name], layer_count=11,
                         user=IMAGE_USERS[name],
                         entrypoint=["python", "-m", "counter_backend"], cmd=None,
                         exposed_ports=["8080/tcp"], env=list(BASE_ENV), history=image_history(parsed)),
        runtime=passing_runtime(assignment, UIDS[name]),
        context=ContextFacts(dockerignore=True, file_count=9, size_bytes=129_000),
        contents=ContentsFacts(),  # a clean final image: no poetry, no sources
        policy=PolicyFacts(),  # the policy gate found nothing to refuse
        port_runtime=RuntimeFacts(started=True, ready=True, ready_seconds=0.4,
                                  probes=passing_probes(assignment)[:1], uid=UIDS[name]),
    )
    return replace(facts, **changes)


def passing_submission(assignment: Assignment, **variant_changes: VariantFacts) -> SubmissionFacts:
    """All three reference variants passing; pass name=VariantFacts to swap one in."""
    variants = {v.name: passing_variant(v.name, assignment) for v in assignment.variants}
    variants.update(variant_changes)
    return SubmissionFacts(repo=REFERENCE, variants=variants)
