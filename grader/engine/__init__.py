"""The only Docker boundary: BuildKit builds through the CLI, everything else through the SDK.

Nothing outside this package imports `docker` or runs the docker CLI for a grading. Errors from
either are translated here into `EngineUnavailable` / `GraderError` (ours) or into facts (the
student's). One concern per module:

    core.py       `Engine`: images, builds, one grading's lifetime (network, containers, images), gc
    build_cli.py  the BuildKit CLI: detected, its environment and private config, the build
                  subprocess with its capped log
    firewall.py   `HostFirewall`: the iptables rules walling a job's network off from the host
    container.py  `Running`, `ContainerFailed`: a started container's address, state and facts
                  (process uid, contents, listening ports)
    context.py    `context_facts`: the build context after .dockerignore
    limits.py     `EngineConfig`, `ContainerLimits`: what the engine reads of the settings
"""

from grader.engine.build_cli import CLI_ENV_KEYS, BuildCli, detect_build_cli, private_docker_config
from grader.engine.container import ContainerFailed, Running, contents_script, listening_ports
from grader.engine.context import CONTEXT_BYTES_LIMIT, CONTEXT_FILE_LIMIT, UNWANTED_IN_CONTEXT, context_facts
from grader.engine.core import LABEL_INSTANCE, LABEL_JOB, Engine, GcReport, _short
from grader.engine.firewall import HostFirewall
from grader.engine.limits import ContainerLimits, EngineConfig

__all__ = [
    "CLI_ENV_KEYS", "CONTEXT_BYTES_LIMIT", "CONTEXT_FILE_LIMIT", "LABEL_INSTANCE", "LABEL_JOB", "UNWANTED_IN_CONTEXT",
    "BuildCli", "ContainerFailed", "ContainerLimits", "Engine", "EngineConfig", "GcReport", "HostFirewall",
    "Running", "_short", "contents_script", "context_facts", "detect_build_cli", "listening_ports",
    "private_docker_config",
]
