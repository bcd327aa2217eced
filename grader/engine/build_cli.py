"""BuildKit builds through the docker CLI: which CLI, its environment and config, the build
subprocess with its capped log, and the quiet host commands (the CLI's probes, iptables)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grader.errors import EngineUnavailable
from grader.facts import BuildFacts
from grader.logcap import CappedLog, tail_text

# Only what the docker CLI needs: the grader's own secrets never reach a build.
CLI_ENV_KEYS = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")


@dataclass(frozen=True)
class BuildCli:
    path: str
    mode: str  # "buildx" (plugin) or "builtin" (DOCKER_BUILDKIT=1 on a CLI older than 23)

    def command(self, dockerfile: Path, context: Path, tag: str, iidfile: Path, labels: dict[str, str]) -> list[str]:
        head = [self.path, "buildx", "build", "--load"] if self.mode == "buildx" else [self.path, "build"]
        label_args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
        return [*head, "--progress=plain", "-f", str(dockerfile), "-t", tag,
                "--iidfile", str(iidfile), *label_args, str(context)]

    def env(self, docker_config: Path | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in CLI_ENV_KEYS if k in os.environ}
        env["DOCKER_BUILDKIT"] = "1"
        if docker_config is not None:
            env["DOCKER_CONFIG"] = str(docker_config)
        return env


def private_docker_config(job: str) -> Path:
    """An empty Docker config directory for one build (the caller removes it). The host's
    config.json would lend a build its registry logins and credential helpers (sent to the engine
    for pulls), its proxies (passed as build args) and its current context (another engine); only
    the CLI plugins (buildx) are linked in."""
    path = Path(tempfile.mkdtemp(prefix=f"grader-{job}-docker-config-"))
    plugins = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "cli-plugins"
    if plugins.is_dir():
        (path / "cli-plugins").symlink_to(plugins)
    return path


def detect_build_cli(configured: str | None) -> BuildCli:
    """A CLI that builds with BuildKit: one with the buildx plugin, or an old one with it built in."""
    names = [configured] if configured else [shutil.which("docker"), "/usr/bin/docker"]
    tried = []
    for cli in dict.fromkeys(n for n in names if n):
        if not (shutil.which(cli) or Path(cli).is_file()):
            tried.append(f"{cli}: not found")
            continue
        version = _quiet([cli, "version", "--format", "{{.Client.Version}}"]).stdout.strip()
        major = version.split(".", 1)[0]
        if major.isdigit() and int(major) < 23:
            return BuildCli(cli, "builtin")
        if _quiet([cli, "buildx", "version"]).returncode == 0:
            return BuildCli(cli, "buildx")
        tried.append(f"{cli}: client {version or '?'} without the buildx plugin")
    raise EngineUnavailable(
        "no docker CLI that can build with BuildKit (" + "; ".join(tried) + "). "
        "Install the buildx plugin (Debian: docker-buildx) or set GRADER_DOCKER_CLI / --docker-cli."
    )


def _quiet(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, env=BuildCli("", "").env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))


def run_build(cli: BuildCli, dockerfile: Path, context: Path, tag: str, log_path: Path, job: str,
              labels: dict[str, str], timeout_s: float, log_cap_bytes: int,
              cancel: threading.Event | None = None) -> BuildFacts:
    """One build by `cli` (`Engine.build` says what it promises)."""
    iidfile = log_path.with_suffix(".iid")
    iidfile.unlink(missing_ok=True)  # a kept log directory must not lend an old image id
    cmd = cli.command(dockerfile, context, tag, iidfile, labels)
    log = CappedLog(log_path, log_cap_bytes)
    started = time.monotonic()
    config = private_docker_config(job)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=cli.env(config), start_new_session=True)
    except OSError:
        shutil.rmtree(config, ignore_errors=True)
        raise
    reader = threading.Thread(target=_pump, args=(proc.stdout, log), daemon=True)
    reader.start()
    try:
        # The reader ends when the client closes its output, i.e. exits: joining it waits
        # without Popen.wait's polling sleeps, which add up to 50 ms to every build.
        deadline = started + timeout_s
        while reader.is_alive() and time.monotonic() < deadline and not (cancel and cancel.is_set()):
            reader.join(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        timed_out = reader.is_alive()
    finally:
        # Timeout or Ctrl-C: killing the client cancels the BuildKit build (its RUN processes
        # go within seconds).
        if reader.is_alive() or proc.poll() is None:
            _kill_group(proc)
        reader.join(timeout=10)
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(config, ignore_errors=True)
    seconds = time.monotonic() - started
    image_id = iidfile.read_text().strip() if iidfile.is_file() else None
    ok = proc.returncode == 0 and not timed_out and bool(image_id)
    return BuildFacts(succeeded=ok, seconds=seconds, timed_out=timed_out,
                      exit_code=proc.returncode, image_id=image_id if ok else None,
                      log_path=log_path, log_tail="" if ok else tail_text(log_path))


def _pump(stream, log: CappedLog) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):
        log.write(chunk)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
