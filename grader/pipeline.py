"""One grading, start to end: discovery → parse → build → run → facts → checks → score.

It never touches Docker directly (that is `engine`), and always leaves the engine as it
found it: containers removed, the job's images removed unless asked to keep them.
The variants build at once (BuildKit shares their common steps); each built image is run and
probed in a worker thread while the others still build.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from grader.assignment import Assignment
from grader.config import Settings
from grader.discovery import Assigned, Discovery, discover
from grader.engine import ContainerFailed, ContainerLimits, Engine, Running, context_facts
from grader.errors import EngineDiskFull, GraderError
from grader.facts import BuildFacts, Note, PolicyFacts, RuntimeFacts, SubmissionFacts, VariantFacts
from grader.lint import hadolint
from grader.messages import note as note_text
from grader.policy import allowed_bases, gate
from grader.probe import NotReady, run_probes, wait_ready
from grader.report import to_json
from grader.scoring import Scored, score
from grader.verdict_cache import VerdictCache, cacheable
from grader.verdict_cache import key as verdict_key

Progress = Callable[[str], None]
PORT_RUN_PATIENCE_S = 10.0


@dataclass
class Job:
    """Per-run state; nothing of it outlives the grading."""

    id: str
    repo: Path
    log_dir: Path
    assignment: Assignment
    settings: Settings
    engine: Engine
    progress: Progress
    cancelled: threading.Event = field(default_factory=threading.Event)  # stop: error, Ctrl-C or watchdog
    expired: threading.Event = field(default_factory=threading.Event)  # the watchdog fired
    network: str | None = None
    gathered_at: float = 0.0  # time.monotonic() when the variants were sent to build


def grade(repo: Path, assignment: Assignment, settings: Settings, engine: Engine,
          reference: Path | None = None, log_dir: Path | None = None,
          progress: Progress = lambda _msg: None, found: Discovery | None = None,
          job_id: str | None = None) -> tuple[SubmissionFacts, Scored]:
    """`job_id` names what the engine labels for this grading; a submission's own (the service
    passes one) lets a run taken over from a killed worker sweep what that worker left."""
    reference = reference or assignment.reference
    found = found or discover(repo, assignment, reference)
    if not engine.has_image(assignment.base_image):
        raise GraderError(f"base image {assignment.base_image} is not on the engine; "
                          "run scripts/setup (it builds a local stand-in when no registry answers)")
    for n in found.notes:
        progress(note_text(n, "en"))
    with tempfile.TemporaryDirectory(prefix="grader-") as tmp:
        job = Job(job_id or uuid.uuid4().hex[:12], repo.resolve(), log_dir or Path(tmp), assignment, settings, engine,
                  progress)
        job.log_dir.mkdir(parents=True, exist_ok=True)
        def expire() -> None:
            job.expired.set()
            job.cancelled.set()

        watchdog = threading.Timer(settings.job_timeout_s, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            # The engine owns what the job creates there, and sweeps it however this block is left.
            with engine.job(job.id, isolate=settings.isolate_network, keep_images=settings.keep_images) as job.network:
                variants = _gather(job, found.variants)
        finally:
            watchdog.cancel()
        if job.expired.is_set():
            raise GraderError(f"grading took longer than the {settings.job_timeout_s:.0f} s watchdog allows; "
                              "nothing of it was kept (raise GRADER_JOB_TIMEOUT_S if builds are this slow)")
        facts = SubmissionFacts(job.repo, variants, found.notes)
        return facts, score(facts, assignment)


def grade_report(repo: Path, assignment: Assignment, settings: Settings, engine: Engine, lang: str, *,
                 reference: Path | None = None, log_dir: Path | None = None, progress: Progress = lambda _m: None,
                 cache: VerdictCache | None = None, source: str = "local",
                 job_id: str | None = None) -> tuple[dict, float]:
    """The report (JSON data) and score, from the verdict cache when this exact input was graded
    before (`source` names what it was, e.g. a commit, for the next one to quote)."""
    found = discover(repo, assignment, reference or assignment.reference)
    digest = None
    if cache is not None and engine.has_image(assignment.base_image):
        digest = verdict_key(found, assignment, engine.inspect_image(assignment.base_image).image_id, lang)
        entry = cache.get(digest)
        if entry is not None:
            progress(f"same Dockerfiles and build contexts as {entry['source']}: its verdict is reused")
            report = dict(entry["report"])
            reused = Note("reused", source=entry["source"], graded_at=entry["graded_at"])
            report["notes"] = [note_text(reused, lang), *report["notes"]]
            return report, float(report["score"])
    facts, scored = grade(repo, assignment, settings, engine, reference, log_dir, progress, found, job_id)
    report = to_json(facts, scored, assignment, lang)
    if cache is not None and digest is not None and cacheable(facts, assignment):
        cache.put(digest, report, source, datetime.now(UTC).isoformat(timespec="seconds"))
    return report, scored.score


def _gather(job: Job, assigned: dict[str, Assigned]) -> dict[str, VariantFacts]:
    # The variants build at once (up to GRADER_PARALLEL_BUILDS): BuildKit merges the steps they share
    # and overlaps the downloads. Each image is run as soon as it is built, twice at once (the main
    # run, and one with PORT moved), while the others still build.
    builders = ThreadPoolExecutor(max_workers=max(1, min(job.settings.parallel_builds, len(assigned))),
                                  thread_name_prefix=f"build-{job.id}")
    pool = ThreadPoolExecutor(max_workers=max(2, 2 * len(assigned)), thread_name_prefix=f"run-{job.id}")
    runs: list[Future[None]] = []
    try:
        job.gathered_at = time.monotonic()
        building = {builders.submit(_build, job, a): name for name, a in assigned.items()}
        built: dict[str, VariantFacts] = {}
        for done in as_completed(building):
            v = built[building[done]] = done.result()
            if v.build is not None and v.build.succeeded:
                runs.append(pool.submit(_run_main, job, v))
                if job.assignment.port_env and job.assignment.alt_port:
                    runs.append(pool.submit(_run_port, job, v))
        variants = {name: built[name] for name in assigned}  # the rubric's order, whatever finished first
        for future in runs:
            future.result()  # each worker fills in its own part of its variant's facts
        for v in variants.values():
            if v.runtime is not None and not v.runtime.ready:
                v.port_runtime = None  # a server that never answered says nothing about PORT
        return variants
    finally:
        # On an error or Ctrl-C the workers see `cancelled`, stop waiting and remove their
        # containers; whatever is left the engine's job sweeps by label (Engine.job).
        job.cancelled.set()
        builders.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True, cancel_futures=True)


def _disk_left(output: str) -> None:
    """The engine's own disk filled up (its data-root, shared by every grading on it): ours."""
    if "no space left on device" in output.lower():
        raise EngineDiskFull("the engine ran out of disk space (no space left on device) during the grading; "
                             "its build cache was cleared — regrade this submission")


def _tag(job: Job, variant: str) -> str:
    return f"grader-{job.id}-{variant}"


def _build(job: Job, a: Assigned) -> VariantFacts:
    taken = time.monotonic()  # a build slot is free: the time since the variants were sent is waiting
    c = a.candidate
    facts = VariantFacts(a.variant, c.rel if c else None, a.found_by, a.context_is_reference, a.context_rel,
                         a.rejected)
    if c is None:
        job.progress(f"{a.variant}: no Dockerfile")
        return facts
    facts.parsed, facts.parse_error = c.parsed, c.parse_error
    facts.parse_reason, facts.parse_params = c.parse_reason, c.parse_params
    if c.parsed is None:
        job.progress(f"{a.variant}: {c.rel} cannot be parsed")
        return facts
    if a.context is None:  # no source next to it, none elsewhere in the repository, no reference
        facts.build = BuildFacts(succeeded=False, seconds=0.0, no_context=True)
        job.progress(f"{a.variant}: no source to build {c.rel} with")
        return facts
    facts.context = context_facts(a.context, c.path)
    facts.lint = hadolint(c.path)
    facts.policy = _gate(job, a)
    if facts.policy.findings:
        job.progress(f"{a.variant}: refused by the build policy (line {facts.policy.findings[0].line}), not built")
        return facts
    limits = job.settings
    if facts.context.size_bytes > limits.max_context_bytes or facts.context.file_count > limits.max_context_files:
        facts.build = BuildFacts(succeeded=False, seconds=0.0, context_refused=True)
        job.progress(f"{a.variant}: build context too large, not sent")
        return facts
    job.progress(f"{a.variant}: building {c.rel}")
    assert facts.policy.buildfile is not None, "the gate writes the copy to build whenever it refuses nothing"
    started = time.monotonic()
    facts.build = job.engine.build(facts.policy.buildfile, a.context, _tag(job, a.variant),
                                   job.log_dir / f"{a.variant}.build.log",
                                   job.id, job.settings.build_timeout_s, job.settings.log_cap_bytes,
                                   cancel=job.cancelled)
    facts.build.started_s = round(started - job.gathered_at, 2)
    facts.build.waited_s = round(taken - job.gathered_at, 2)
    if not facts.build.succeeded:
        job.engine.answering()  # a build the dying engine broke is not the student's failure
        _disk_left(facts.build.log_tail)
        job.progress(f"{a.variant}: build failed after {facts.build.seconds:.0f} s")
        return facts
    facts.image = job.engine.inspect_image(_tag(job, a.variant))
    if facts.image.size_bytes > job.settings.max_image_bytes:
        job.engine.remove_image(_tag(job, a.variant))
        facts.build.succeeded, facts.build.oversize_limit = False, job.settings.max_image_bytes
        job.progress(f"{a.variant}: image of {facts.image.size_bytes / 2**20:.0f} MiB is over the limit")
        return facts
    job.progress(f"{a.variant}: built in {facts.build.seconds:.1f} s, running it")
    return facts


def _gate(job: Job, a: Assigned) -> PolicyFacts:
    """The policy gate (grader/policy.py): what the file would make the engine fetch is refused
    before the engine sees it; otherwise the copy to build is written next to the build log."""
    env = {}
    for base in allowed_bases(job.assignment):
        if not job.engine.has_image(base):  # the engine would pull it for the student
            raise GraderError(f"allowed base image {base} is not on the engine; run scripts/setup "
                              "or remove it from [policy] allowed_base_images")
        env[base] = job.engine.inspect_image(base).env
    assert a.candidate is not None, "only a variant with a Dockerfile reaches the gate"
    return gate(a.candidate.path, job.assignment, env, job.log_dir / f"{a.variant}.Dockerfile",
                cache_scope=f"grader-{job.id}")


def _run_main(job: Job, v: VariantFacts) -> None:
    """The main run: readiness, probes, uid, contents, stop."""
    v.runtime = _run(job, _tag(job, v.name), "run", job.assignment.app_port, {}, lambda r, f: _observe(job, r, f, v))
    job.progress(f"{v.name}: probed, uid {v.runtime.uid}")


def _run_port(job: Job, v: VariantFacts) -> None:
    """A second container with PORT moved: does the server follow it?"""
    a = job.assignment
    assert a.port_env is not None and a.alt_port is not None, "started only when the assignment sets both"
    # A server that ignores PORT listens elsewhere for good: waiting the full readiness time for it
    # would cost every such submission 30 s for an advisory check.
    patience = min(job.settings.ready_timeout_s, PORT_RUN_PATIENCE_S)
    v.port_runtime = _run(job, _tag(job, v.name), "port", a.alt_port, {a.port_env: str(a.alt_port)},
                          lambda r, f: _observe_port(job, r, f, patience))


def _run(job: Job, tag: str, suffix: str, port: int, env: dict[str, str], observe) -> RuntimeFacts:
    if job.cancelled.is_set():
        return RuntimeFacts(started=False, error="grading was cancelled")
    limits = ContainerLimits.from_settings(job.settings)
    try:
        with job.engine.container(tag, f"{tag}-{suffix}", job.id, port, env, job.network, limits) as running:
            facts = RuntimeFacts(started=True, memory_limit_bytes=limits.memory_bytes)
            observe(running, facts)
            return facts
    except ContainerFailed as exc:
        job.engine.answering()  # nor a container the dying engine could not start
        _disk_left(str(exc))
        return RuntimeFacts(started=False, error=str(exc))


def _wait(job: Job, running: Running, facts: RuntimeFacts, timeout_s: float | None = None) -> str | None:
    """The container's URL once it answers HTTP; None (with the reason in facts) otherwise."""
    probes = job.assignment.probes
    try:
        url = running.url()
        alive = lambda: not job.cancelled.is_set() and running.is_running()  # noqa: E731
        facts.ready_seconds = wait_ready(url, timeout_s or job.settings.ready_timeout_s, alive,
                                         probes[0].path if probes else "/")
        facts.ready = True
        return url
    except (NotReady, ContainerFailed) as exc:
        facts.error = str(exc)
        return None


def _observe(job: Job, running: Running, facts: RuntimeFacts, v: VariantFacts) -> None:
    settings = job.settings
    url = _wait(job, running, facts)
    if url:
        facts.probes = run_probes(url, job.assignment.probes, settings.probe_timeout_s, settings.response_cap_bytes)
    if job.cancelled.is_set():
        return  # leaving the container's context removes it; nothing more to observe
    if running.is_running():
        facts.uid = running.process_uid()
        if not facts.ready:
            facts.listening_ports = running.listening_ports()
        fi = job.assignment.final_image
        v.contents = running.contents(fi.tool_names + fi.build_files, fi.source_paths)
        facts.stop_seconds = running.stop(settings.stop_timeout_s)
    else:
        facts.exited_early = True
    _record_exit(running, facts)


def _observe_port(job: Job, running: Running, facts: RuntimeFacts, patience_s: float) -> None:
    """Only: does the server answer on the port the environment asked for?"""
    url = _wait(job, running, facts, patience_s)
    if url and job.assignment.probes:
        facts.probes = run_probes(url, job.assignment.probes[:1], job.settings.probe_timeout_s,
                                  job.settings.response_cap_bytes)
    if not facts.ready and running.is_running() and not job.cancelled.is_set():
        facts.listening_ports = running.listening_ports()
    _record_exit(running, facts)


def _record_exit(running: Running, facts: RuntimeFacts) -> None:
    facts.log_tail = running.logs_tail()
    state = running.state()
    facts.exit_code = state.get("ExitCode")
    facts.oom_killed = bool(state.get("OOMKilled"))
