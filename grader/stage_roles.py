"""What each stage of a Dockerfile does, read from its instructions: a description, no verdict.
The structure checks (checks/stages.py) judge from it; discovery (grader/discovery.py) tells an
earlier edition's files apart with it, so both count stages the same way.

Definitions (README, "The checks"):
- Only the stages the final stage needs count: BuildKit never builds the others.
- A stage *receives the sources* when it COPYs/ADDs from the build context or clones the project;
  it *runs the build* when it runs Poetry, `pip wheel` or another wheel build. Such a stage is
  *tainted*: whatever is built FROM it ships its sources and build tools.
- A stage *works* when it is tainted, takes artefacts from another stage (COPY --from) or installs
  packages. Anything else — FROM plus ENV/ARG/WORKDIR/SHELL/LABEL/EXPOSE, or RUN steps that bring
  no project files such as creating a user — is an *alias* of its base.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from grader.dockerfile import Instruction, ParsedDockerfile, Stage

BUILD_WORK = r"\bpoetry\b|\bpip[\d.]*\s+(?:-\S+\s+)*wheel\b|\bpython[\d.]*\s+-m\s+build\b|\bsetup\.py\b"
INSTALLS = r"\bpip[\d.]*\s+(?:-\S+\s+)*install\b"
GIT_CLONE = r"\bgit\s+clone\b|git\+(?:https?|ssh)://"


@dataclass
class Role:
    """What one stage does, with the instructions that show it."""

    stage: Stage
    sources: list[Instruction] = field(default_factory=list)  # COPY/ADD from the context, git clone
    build: list[tuple[int, str]] = field(default_factory=list)  # (line, text) of build commands
    takes: list[tuple[Instruction, Stage]] = field(default_factory=list)  # COPY --from=<stage>
    installs: list[Instruction] = field(default_factory=list)

    @property
    def tainted(self) -> bool:
        return bool(self.sources or self.build)

    @property
    def working(self) -> bool:
        return bool(self.tainted or self.takes or self.installs)


def roles(p: ParsedDockerfile) -> list[Role]:
    """The role of every stage the final image needs, in file order."""
    return [role_of(p, s) for s in p.needed()]


def role_of(p: ParsedDockerfile, stage: Stage) -> Role:
    role = Role(stage)
    for ins in stage.instructions:
        if ins.cmd in ("COPY", "ADD"):
            ref = ins.flag("from")
            other = p.stage(ref) if ref else None
            if other is not None:
                role.takes.append((ins, other))
            elif not ref:
                role.sources.append(ins)
        elif ins.cmd == "RUN":
            if re.search(GIT_CLONE, ins.command):
                role.sources.append(ins)
            work = ins.locate(BUILD_WORK)
            if work:
                role.build.append(work)
            if re.search(INSTALLS, ins.command):
                role.installs.append(ins)
    return role


