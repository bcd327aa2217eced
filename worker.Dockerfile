# The grader's image, one for both roles; the command picks the role:
#   docker run IMAGE                                  -> grader serve --host 0.0.0.0 (webhook + report pages, :8000)
#   docker run IMAGE worker --concurrency 1           -> grader worker (Celery; builds and runs submissions)
#   docker run IMAGE check /repo --no-isolation       -> any other grader command
#
# Build (BuildKit is required, for RUN --mount; Debian 12's /usr/bin/docker has it built in):
#   DOCKER_BUILDKIT=1 /usr/bin/docker build -f worker.Dockerfile -t grader:latest .
#
# Base image: pinned to the same tag as the course's rubric (checks/assignments/counter_backend.toml),
# so a worker host that grades already holds it. Where no registry answers, scripts/setup makes a
# local stand-in under this very name (scripts/base/python-standin.Dockerfile: Debian 12's Python 3.11
# on a debootstrap minbase, trusting the host's CA bundle); this file works on both. Where a
# registry is reachable, pin the digest too: --build-arg PYTHON_IMAGE=python:3.11.6-slim-bookworm@sha256:…
#
# Running the worker (see compose.yaml for the whole service):
# - Docker engine. The worker talks to an engine through /var/run/docker.sock (mounted) or
#   DOCKER_HOST. It runs as the unprivileged user `grader` (uid 10001), so it may open the socket
#   only through the socket's group, added at run time: `--group-add $(stat -c %g /var/run/docker.sock)`
#   (compose: `group_add: ["${DOCKER_GID}"]`). The gid differs from host to host, so it is not baked
#   in here. Whoever holds that socket is root on the engine's host: run workers on machines of
#   their own, ideally against a dedicated engine (own socket, --cgroup-parent ceiling; README).
# - Network isolation of students' containers. The grader probes each student's container at
#   its address on a per-job internal bridge and walls that bridge off from the host with two
#   iptables INPUT rules. Both only work in the engine host's network namespace, so the worker
#   needs host networking (`--network host`) and the NET_ADMIN capability (`--cap-add NET_ADMIN`);
#   iptables below carries file capabilities so that the non-root user can use the capability
#   (do not set no-new-privileges on the worker: it disables file capabilities).
#   Trade-off: host networking + NET_ADMIN let the worker change the host's firewall, but the
#   Docker socket it already holds is root-equivalent, so they add no real power; what they cost
#   is that the worker reaches Redis/PostgreSQL through ports published on the host, not through
#   the compose network. The alternatives: run `grader worker` on the host itself (scripts/service;
#   same privileges, no container), or `GRADER_ISOLATE_NETWORK=0` — unsafe for untrusted
#   submissions (they can reach every service on the host), and even then the worker needs host
#   networking to reach the ports published on 127.0.0.1.
#   If the host's firewall uses iptables-legacy (`iptables -V` says "legacy"), set
#   GRADER_IPTABLES=iptables-legacy and mount /run/xtables.lock so the lock is shared with dockerd.

ARG PYTHON_IMAGE=python:3.11.6-slim-bookworm

# ---- build: wheels of the project and every dependency, and the docker CLI ----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_WARN_SCRIPT_LOCATION=1
# Debian 12's docker.io CLI (20.10) builds with BuildKit without the buildx plugin. Only the
# client binary is taken from the package (it links only libc); the daemon, containerd and runc
# that installing docker.io would bring are never installed.
RUN apt-get update \
 && mkdir -p /out /tmp/deb && cd /tmp/deb \
 && apt-get download docker.io \
 && dpkg-deb -x docker.io_*.deb /tmp/deb/root \
 && install -m 0755 /tmp/deb/root/usr/bin/docker /out/docker \
 && /out/docker --version \
 && rm -rf /tmp/deb /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY checks ./checks
COPY grader ./grader
# The pip cache survives between builds (a changed source re-downloads nothing); TLS to the
# package index uses the base image's trust store (PIP_CERT in the local stand-in).
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip wheel --wheel-dir /wheels . \
 && ls /wheels

# ---- final: Python, the installed wheels, the docker CLI, iptables; no compilers, no sources ---
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/grader/bin:$PATH
# iptables for the per-job wall (see above), with the capabilities it needs as file capabilities;
# they take effect only when the container is given NET_ADMIN. setcap is removed afterwards.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables libcap2-bin \
 && for x in /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi; do \
      setcap cap_net_admin,cap_net_raw+ep "$x"; done \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log
COPY --from=build /out/docker /usr/bin/docker
# Only the wheels, offline; they are bind-mounted for this step and never stored in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/grader \
 && /opt/grader/bin/pip install --no-index --no-cache-dir --find-links /wheels grader \
 && grader --help >/dev/null \
 && python -c "import grader.assignment as a; assert a.DEFAULT_ASSIGNMENT.is_file(), a.DEFAULT_ASSIGNMENT"
# HEALTHCHECK, one for both roles, chosen by PID 1's command line:
#   serve:  GET http://127.0.0.1:PORT/healthz answers 200 (PORT from --port, default 8000);
#   worker: the Docker engine answers, and this worker's Celery node answers a ping through the
#           broker (so the broker is reachable and the consumer alive; pings are answered while
#           a grading runs). Node name: celery@HOSTNAME, or -n/--hostname NAME (%h expanded).
RUN printf '%s\n' \
  '"""HEALTHCHECK of the grader image (worker.Dockerfile): serve -> /healthz; worker -> engine + Celery ping."""' \
  'import socket, sys, urllib.request' \
  'args = open("/proc/1/cmdline", "rb").read().decode(errors="replace").split("\0")' \
  'if "worker" in args:' \
  '    import docker' \
  '    from grader.tasks import app' \
  '    docker.from_env(timeout=5).ping()' \
  '    name = "celery@%h"' \
  '    for i, arg in enumerate(args):' \
  '        if arg in ("-n", "--hostname") and i + 1 < len(args):' \
  '            name = args[i + 1]' \
  '        elif arg.startswith("--hostname="):' \
  '            name = arg.split("=", 1)[1]' \
  '    name = name.replace("%h", socket.gethostname())' \
  '    sys.exit(0 if app.control.ping(destination=[name], timeout=5) else 1)' \
  'port = args[args.index("--port") + 1] if "--port" in args else "8000"' \
  'with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:' \
  '    sys.exit(0 if response.status == 200 else 1)' \
  > /opt/grader/healthcheck.py \
 && python -m py_compile /opt/grader/healthcheck.py
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
  CMD ["python", "/opt/grader/healthcheck.py"]

RUN groupadd --gid 10001 grader \
 && useradd --uid 10001 --gid grader --no-log-init --create-home --home-dir /home/grader \
      --shell /usr/sbin/nologin grader
USER grader
WORKDIR /home/grader
EXPOSE 8000
ENTRYPOINT ["grader"]
CMD ["serve", "--host", "0.0.0.0"]
