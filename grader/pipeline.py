"""One grading, start to end: discovery → parse → build → run → facts → checks → score.

It never touches Docker directly (that is `engine`), and always leaves the engine as it
found it: containers removed, the job's images removed unless asked to keep them.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader.assignment import Assignment
from grader.config import Settings
from grader.discovery import Assigned, discover
from grader.engine import ContainerFailed, Engine, Running
from grader.errors import GraderError, SubmissionError
from grader.facts import RuntimeFacts, SubmissionFacts, VariantFacts
from grader.probe import NotReady, run_probes, wait_ready
from grader.scoring import Scored, score

Progress = Callable[[str], None]


@dataclass
class Job:
    """Per-run state; nothing of it outlives the grading."""

    id: str
    repo: Path
    log_dir: Path


def grade(repo: Path, assignment: Assignment, settings: Settings, engine: Engine,
          reference: Path | None = None, log_dir: Path | None = None,
          progress: Progress = lambda _msg: None) -> tuple[SubmissionFacts, Scored]:
    reference = reference or assignment.reference
    found = discover(repo, assignment, reference)
    _require_contexts(found.variants.values(), reference)
    if not engine.has_image(assignment.base_image):
        raise GraderError(f"base image {assignment.base_image} is not on the engine; "
                          "run scripts/setup (it builds a local stand-in when no registry answers)")
    for note in found.notes:
        progress(note)
    with tempfile.TemporaryDirectory(prefix="grader-") as tmp:
        job = Job(uuid.uuid4().hex[:12], repo.resolve(), log_dir or Path(tmp))
        job.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            variants = {name: _variant(job, a, assignment, settings, engine, progress)
                        for name, a in found.variants.items()}
            facts = SubmissionFacts(job.repo, variants, found.notes)
            return facts, score(facts, assignment)
        finally:
            _cleanup(job, engine, settings)


def _require_contexts(assigned, reference: Path | None) -> None:
    if reference is not None and not (reference / "pyproject.toml").is_file():
        raise SubmissionError(f"reference source {reference} has no pyproject.toml")
    for a in assigned:
        if a.candidate is not None and a.context is None:
            raise SubmissionError(
                f"{a.candidate.rel}: no pyproject.toml next to it and no reference source; "
                "pass --reference DIR (the course's counter-backend source)"
            )


def _variant(job: Job, a: Assigned, assignment: Assignment, settings: Settings,
             engine: Engine, progress: Progress) -> VariantFacts:
    c = a.candidate
    facts = VariantFacts(a.variant, c.rel if c else None, a.found_by, a.context_is_reference)
    if c is None:
        progress(f"{a.variant}: no Dockerfile")
        return facts
    facts.parsed, facts.parse_error = c.parsed, c.parse_error
    if c.parsed is None:
        progress(f"{a.variant}: {c.rel} cannot be parsed")
        return facts
    tag = f"grader-{job.id}-{a.variant}"
    progress(f"{a.variant}: building {c.rel}")
    facts.build = engine.build(c.path, a.context, tag, job.log_dir / f"{a.variant}.build.log", job.id)
    if not facts.build.succeeded:
        progress(f"{a.variant}: build failed after {facts.build.seconds:.0f} s")
        return facts
    facts.image = engine.inspect_image(tag)
    progress(f"{a.variant}: built in {facts.build.seconds:.1f} s, running it")
    facts.runtime = _run(job, tag, a.variant, assignment, settings, engine)
    return facts


def _run(job: Job, tag: str, variant: str, assignment: Assignment,
         settings: Settings, engine: Engine) -> RuntimeFacts:
    port = assignment.app_port
    try:
        with engine.container(tag, f"{tag}-run", job.id, port, {}) as running:
            facts = RuntimeFacts(started=True)
            _observe(running, facts, assignment, settings)
            return facts
    except ContainerFailed as exc:
        return RuntimeFacts(started=False, error=str(exc))


def _observe(running: Running, facts: RuntimeFacts, assignment: Assignment, settings: Settings) -> None:
    first = assignment.probes[0].path if assignment.probes else "/"
    try:
        url = running.url()
        facts.ready_seconds = wait_ready(url, settings.ready_timeout_s, running.is_running, first)
        facts.ready = True
    except (NotReady, ContainerFailed) as exc:
        facts.error = str(exc)
    if facts.ready:
        facts.probes = run_probes(url, assignment.probes, settings.probe_timeout_s,
                                  settings.response_cap_bytes)
    if running.is_running():
        facts.uid = running.process_uid()
        facts.stop_seconds = running.stop(settings.stop_timeout_s)
    facts.log_tail = running.logs_tail()
    state = running.state()
    facts.exit_code = state.get("ExitCode")
    facts.oom_killed = bool(state.get("OOMKilled"))


def _cleanup(job: Job, engine: Engine, settings: Settings) -> None:
    engine.remove_job(job.id, images=not settings.keep_images)
