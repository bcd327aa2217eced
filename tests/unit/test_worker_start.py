"""Why `grader worker` starts Celery in a fresh interpreter (grader/cli/serving.py, `worker`): BuildKit's
parser is Go inside a Python extension, and a process that loaded it and then forked — which is
what Celery's prefork pool does — hangs in the child's parses. The control shows that the same
parses in a child that loads the parser itself finish. If the first test ever fails, the library
fixed it and the exec in `worker` may go."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REFERENCE_SOURCE

CHILD = textwrap.dedent("""
    import os, sys, time
    LOAD_BEFORE_FORK = sys.argv[1] == "before"
    if LOAD_BEFORE_FORK:
        import dockerfile
        dockerfile.parse_string("FROM scratch\\n")
    text = open(sys.argv[2]).read() * 5
    pid = os.fork()
    if pid == 0:
        import dockerfile
        for _ in range(1500):
            dockerfile.parse_string(text)
        os._exit(0)
    deadline = time.monotonic() + 15  # a loaded machine is slow; a hung child never ends
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            print("finished"); break
        time.sleep(0.05)
    else:
        os.kill(pid, 9); os.waitpid(pid, 0); print("hung")
""")


def _run(when: str) -> str:
    dockerfile = str(REFERENCE_SOURCE / "Dockerfile.multistage")
    return subprocess.run([sys.executable, "-c", CHILD, when, dockerfile], capture_output=True, text=True,
                          timeout=60).stdout.strip()


def test_a_child_forked_after_the_parser_was_loaded_hangs_in_its_parses():
    assert _run("before") == "hung"


def test_a_child_that_loads_the_parser_itself_finishes_the_same_parses():
    assert _run("after") == "finished"


def test_the_modules_celerys_main_process_imports_do_not_load_the_parser():
    """`celery -A grader.tasks worker` imports grader.tasks in the main process before forking."""
    probe = "import sys, grader.tasks; print('dockerfile' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
    loaded = subprocess.run([sys.executable, "-c", "import sys, grader.cli; print('dockerfile' in sys.modules)"],
                            capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "True"  # control: the CLI does load it, hence the exec
