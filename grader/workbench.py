"""What this machine does with its own Docker engine, without the service: grade a directory
(`grader check`), grade the course's solution with a rubric (`validate`), clear what killed runs
left (`gc`), say whether it can grade (`doctor`), and compare students' directories
(`similarity DIR...`). The CLI renders what these return; errors are the named ones of
grader/errors.py, which the CLI turns into exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grader import assignment as assignment_mod
from grader.errors import ConfigError, SubmissionError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from grader.app import EngineFactory
    from grader.assignment import Assignment
    from grader.config import Settings
    from grader.doctor import Finding
    from grader.engine import GcReport
    from grader.scoring import Scored
    from grader.similarity import Config
    from grader.similarity.index import Index, Pair

BUNDLED_SOLUTION = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reference"


@dataclass(frozen=True)
class CheckOptions:
    """`grader check`'s options: None leaves the setting (GRADER_*) or the assignment's value."""

    reference: Path | None = None
    assignment: Path | None = None
    lang: str | None = None
    build_timeout: float | None = None
    docker_cli: str | None = None
    logs: Path | None = None
    keep_images: bool = False
    isolation: bool | None = None
    cache: bool = True


@dataclass(frozen=True)
class EngineHealth:
    """What `grader doctor` found; `cgroup`, `ceiling` and `walls` only when the base image is there."""

    cli_path: str
    cli_mode: str
    base_image: str
    base_image_present: bool
    cgroup: str | None = None
    ceiling: str = ""
    walls: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class Comparison:
    """Pairs of similar submissions, and what could not be compared (one line each)."""

    pairs: list[Pair]
    threshold: float
    problems: list[str]


class Workbench:
    def __init__(self, settings: Settings, engine: EngineFactory) -> None:
        self.settings = settings
        self.engine = engine

    def check(self, path: Path, options: CheckOptions, progress: Callable[[str], None]) -> tuple[dict, float]:
        """The report and score of the repository at `path`. A submission that cannot be graded
        raises SubmissionError saying why in the report's language (never a server path)."""
        from grader.messages import refusal
        from grader.pipeline import grade_report
        from grader.verdict_cache import VerdictCache

        settings = self._overridden(options)
        rubric = assignment_mod.load(options.assignment or settings.assignment_file)
        if options.reference is not None and not options.reference.is_dir():
            raise ConfigError(f"--reference {options.reference}: not a directory")
        engine = self.engine(settings)
        verdicts = VerdictCache(settings.work_dir / "verdicts") if options.cache and settings.verdict_cache else None
        language = options.lang or rubric.language
        try:
            report, total = grade_report(path, rubric, settings, engine, language,
                                         reference=options.reference and options.reference.resolve(),
                                         log_dir=options.logs, progress=progress, cache=verdicts, source=str(path))
        except SubmissionError as exc:
            raise SubmissionError(refusal(exc, language)) from exc
        engine.trim_cache(settings.build_cache_bytes)  # a laptop has no worker doing it periodically
        return report, total

    def _overridden(self, options: CheckOptions) -> Settings:
        settings = self.settings.model_copy()
        if options.build_timeout is not None:
            settings.build_timeout_s = options.build_timeout
        if options.docker_cli is not None:
            settings.docker_cli = options.docker_cli
        settings.keep_images = options.keep_images or settings.keep_images
        if options.isolation is not None:
            settings.isolate_network = options.isolation
        return settings

    def gc(self, older_than: float | None, cache_bytes: int | None) -> GcReport:
        """Leftovers of crashed or killed runs removed, the build cache trimmed (None: the settings')."""
        settings = self.settings
        return self.engine(settings).gc(settings.gc_after_s if older_than is None else older_than,
                                        settings.build_cache_bytes if cache_bytes is None else cache_bytes)

    def rubric(self, file: Path | None = None) -> Assignment:
        """The assignment file (default GRADER_ASSIGNMENT_FILE), checked; ConfigError naming the field."""
        return assignment_mod.load(file or self.settings.assignment_file)

    def grade_solution(self, rubric: Assignment, solution: Path | None, reference: Path | None) -> tuple[Path, Scored]:
        """The course's own solution (default: the bundled reference) graded with `rubric`."""
        from grader.pipeline import grade

        repo = solution or BUNDLED_SOLUTION
        if not repo.is_dir():
            raise ConfigError(f"no solution to grade at {repo}: pass --solution DIR (the course's own solution)")
        _, scored = grade(repo, rubric, self.settings, self.engine(self.settings),
                          reference=reference and reference.resolve())
        return repo, scored

    def doctor(self, docker_cli: str | None) -> EngineHealth:
        """The engine and BuildKit CLI answer (else EngineUnavailable), the base image of the rubric this
        machine grades by is there, the build ceiling, and whether build steps are walled off."""
        from grader.doctor import build_wall_findings

        settings = self.settings.model_copy()
        settings.docker_cli = docker_cli or settings.docker_cli
        rubric = assignment_mod.load(settings.assignment_file)  # the rubric this worker grades by
        engine = self.engine(settings)
        found = EngineHealth(cli_path=engine.cli.path, cli_mode=engine.cli.mode,
                             base_image=rubric.base_image, base_image_present=engine.has_image(rubric.base_image))
        if not found.base_image_present:
            return found
        parent = engine.cgroup_parent(rubric.base_image)
        return EngineHealth(found.cli_path, found.cli_mode, found.base_image, True, cgroup=parent,
                            ceiling=ceiling(parent), walls=tuple(build_wall_findings(settings, settings.iptables)))

    def compare_dirs(self, dirs: Sequence[Path], assignment: Path | None, base: Sequence[Path]) -> Comparison:
        """Students' repositories compared pairwise; SubmissionError when no Dockerfile could be read."""
        from grader.similarity import compare
        from grader.similarity.local import records_from_dirs

        rubric, config = similarity_config(self.settings, assignment, base)
        records, problems = records_from_dirs(dirs, rubric)
        if not records:
            raise SubmissionError("no Dockerfile could be read: " + "; ".join(problems))
        pairs, index = compare(records, config)
        return Comparison(pairs, config.threshold, problems + skipped(index))


def similarity_config(settings: Settings, assignment: Path | None, base: Sequence[Path]) -> tuple[Assignment, Config]:
    """The rubric and its similarity table (what to discount, when to flag), extra base files added."""
    from grader.similarity import load_config

    rubric = assignment_mod.load(assignment or settings.assignment_file)
    return rubric, load_config(rubric, base or ())


def skipped(index: Index) -> list[str]:
    return [f"{record.id}: {reason}" for record, reason in index.skipped]


def ceiling(parent: str | None, root: Path = Path("/sys/fs/cgroup")) -> str:
    """The memory/pids ceiling of the engine's cgroup parent, read from this machine's cgroup
    tree (v1: one tree per controller; v2: one unified tree). Unknown for a remote engine."""
    unknown = "ceiling unknown (a remote engine, or its cgroup is not visible here)"
    if parent is None:
        return unknown
    rel = parent.lstrip("/")
    v2 = (root / "cgroup.controllers").is_file()
    memory_file = root / rel / "memory.max" if v2 else root / "memory" / rel / "memory.limit_in_bytes"
    pids_file = root / rel / "pids.max" if v2 else root / "pids" / rel / "pids.max"
    try:
        raw, pids = memory_file.read_text().strip(), pids_file.read_text().strip()
        memory = 2**63 if raw == "max" else int(raw)
    except (OSError, ValueError):
        return unknown
    if memory >= 2**62:
        return "NO memory ceiling for builds: start the engine with scripts/setup (docs/operating.md)"
    return f"memory ceiling {memory / 2**30:.1f} GiB, pids {pids}"
