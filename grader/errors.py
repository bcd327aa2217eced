"""The two kinds of failure, never confused.

`SubmissionError` is the student's fault and becomes a scored verdict with an explanation.
`GraderError` is ours (engine down, base image missing, bad configuration): the grading
stops, nothing is scored, and the message says what the operator should do.
"""


class GraderError(Exception):
    """Grading could not be carried out; the submission is ungradable, not failed."""

    exit_code = 3


class EngineUnavailable(GraderError):
    """The Docker engine (or a BuildKit-capable CLI) cannot be reached."""

    exit_code = 4


class EngineDiskFull(GraderError):
    """The engine ran out of disk space mid-grading: not the student's failure, and retrying on a
    full disk will not help (the worker cleans the engine and gives this submission up)."""


class ConfigError(GraderError):
    """The grader's own settings or assignment file are wrong."""

    exit_code = 2


class SubmissionError(Exception):
    """The submission cannot be graded as given (no Dockerfiles, unparsable file, empty repo).

    With a `reason` (a key of checks/messages/refusal.toml) and its values, the student reads it
    in the report's language (grader.messages.refusal); the plain message is for logs."""

    exit_code = 1

    def __init__(self, message: str, reason: str | None = None, **params: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.params = params
