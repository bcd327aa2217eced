"""A PostgreSQL server of a test's own, which the test can take down and bring back (the
machine's server is shared by every test: stopping it would fail the others)."""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    url: str  # SQLAlchemy's URL of the server's `postgres` database
    stop: Callable[[], None]  # hard (`-m immediate`): connections cut, no shutdown checkpoint, data kept
    start: Callable[[], None]  # returns once it takes connections

    def down_for(self, seconds: float) -> None:
        self.stop()
        time.sleep(seconds)
        self.start()


@contextmanager
def private_postgres() -> Iterator[Server]:
    """A PostgreSQL server of this test's own (the machine's is shared), started, and removed after."""
    bin_dir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="grader-pg-"))
    home.chmod(0o755)
    shutil.chown(home, "postgres", "postgres")
    data = home / "data"

    def as_postgres(*args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120)

    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start() -> None:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start")

    def stop() -> None:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")

    try:
        as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        start()
        yield Server(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop, start)
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)
