"""The report contract `grader.report/1` as a typed model: what every renderer, the store, the
web pages and GitLab posts read. `docs/report.schema.json` is generated from it (a test keeps the
two equal), so a client in any language can validate a report. Extend, don't break: new fields are
optional; removing or renaming one is a new schema version.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = "grader.report/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Evidence(_Strict):
    kind: Literal["dockerfile", "log", "command", "observed"]
    text: str
    line: int | None = Field(description="The Dockerfile line it refers to, when it refers to one.")


class Check(_Strict):
    id: str
    title: str
    status: Literal["pass", "fail", "warn", "skip"]
    reason: str = Field(description="The message's catalogue key (checks/messages/*.toml).")
    points: float
    max_points: float
    required: bool
    message: str = Field(description="In the report's language.")
    evidence: list[Evidence]


class Probe(_Strict):
    method: str
    path: str
    status: int | None
    body: str | None
    passed: bool


class Variant(_Strict):
    name: str
    title: str
    dockerfile: str | None = Field(description="Repo-relative path of the file graded for this variant.")
    found_by: Literal["name", "near_name", "content"] | None
    context: Literal["submission", "reference"]
    built: bool
    build_seconds: float | None
    build_started_s: float | None = None  # after the variants were sent to build
    build_waited_s: float | None = None  # of which waiting for a free build slot
    image_id: str | None
    image_size_bytes: int | None
    layer_count: int | None
    stage_count: int | None = Field(description="FROM lines in the file (working stages: see multi_stage).")
    runtime_uid: int | None
    ready_seconds: float | None
    stop_seconds: float | None
    probes: list[Probe]
    checks: list[Check]
    score: float
    max_score: float


class Provenance(_Strict):
    """Where a grade comes from, filled by the service (absent from a local `grader check`, whose
    file references are then plain path:line)."""

    sha: str | None = Field(default=None, description="The commit graded.")
    project: str | None = Field(default=None, description="The project's path, e.g. devops-2026/ivanov-docker.")
    project_url: str | None = Field(default=None, description="The project's web URL: file references link to "
                                    "{project_url}/-/blob/{sha}/{path}#L{line}.")
    received_at: str | None = Field(default=None, description="When the push arrived (ISO 8601).")
    graded_at: str | None = Field(default=None, description="When the grading ended (ISO 8601).")
    late: bool | None = Field(default=None, description="The push came after the deadline.")
    deadline: str | None = Field(default=None, description="The deadline it was judged by (ISO 8601).")
    pushed_at: str | None = Field(default=None, description="When the commit was pushed (ISO 8601): lateness is "
                                  "judged by it, not by when it was graded.")
    pushed_at_source: Literal["push_event", "received"] | None = Field(
        default=None, description="Where pushed_at comes from: GitLab's push events, or (GitLab could not say) "
        "when the push arrived.")
    extension_until: str | None = Field(default=None, description="The student's extended deadline (ISO 8601), "
                                        "when they have one; then it is the deadline.")


class Report(_Strict):
    schema_: Literal["grader.report/1"] = Field(alias="schema")
    grader_version: str
    assignment: str
    language: Literal["ru", "en"]
    score: float
    max_score: float
    variants: list[Variant]
    checks: list[Check] = Field(description="Assignment-wide checks, e.g. size_comparison.")
    notes: list[str] = Field(description="What discovery says (files taken, ignored, misplaced), in the language.")
    error: str | None = Field(default=None, description="Why the submission could not be graded at all.")
    assignment_title: str | None = Field(default=None, description="The assignment's title in the language.")
    provenance: Provenance | None = Field(default=None, description="Commit, times and lateness (the service's).")


def json_schema() -> str:
    """The JSON Schema of a report, as checked in at docs/report.schema.json."""
    return json.dumps(Report.model_json_schema(by_alias=True), ensure_ascii=False, indent=2) + "\n"


def validate(report: dict) -> Report:
    """The report as the model; raises pydantic.ValidationError when it breaks the contract."""
    return Report.model_validate(report)
