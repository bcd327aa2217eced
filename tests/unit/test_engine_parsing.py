"""The engine's pure helpers: reading /proc/net/tcp and sorting an image listing."""

from grader.engine import contents_script, context_facts, listening_ports

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000   100        0 1 1
   1: 0100007F:1F90 0100007F:A2C4 01 00000000:00000000 00:00000000 00000000   100        0 2 1
   2: 00000000:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000   100        0 3 1
"""


def test_only_listening_sockets_count_as_ports():
    assert listening_ports(PROC_NET_TCP) == [8000, 9090]  # 1F90 is an established connection


def test_garbage_proc_text_gives_no_ports():
    assert listening_ports("nonsense\n1 2\n") == []


def test_contents_search_quotes_what_the_assignment_names():
    script = contents_script(["poetry", "it's"], ["*/src/counter_backend"])
    assert "-name poetry -o -name 'it'\"'\"'s' -o -path '*/src/counter_backend'" in script
    assert "head -n 100" in script  # bounded output


def _project(root):
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print(1)\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").write_text("#!")
    (root / "Dockerfile.single").write_text("FROM x\n")
    return root


def test_context_without_dockerignore_sends_git_and_venv(tmp_path):
    root = _project(tmp_path)
    facts = context_facts(root, root / "Dockerfile.single")
    assert not facts.dockerignore
    assert facts.unwanted == [".git", ".venv"]
    assert facts.file_count == 4


def test_dockerignore_keeps_them_out_but_the_dockerfile_is_always_sent(tmp_path):
    root = _project(tmp_path)
    (root / ".dockerignore").write_text("# comment\n.git\n.venv\nDockerfile.*\n")
    facts = context_facts(root, root / "Dockerfile.single")
    assert facts.dockerignore and facts.unwanted == []
    assert facts.file_count == 3  # src/app.py, .dockerignore, Dockerfile.single


def test_engine_errors_say_the_engines_explanation_not_the_sdks_url():
    import docker.errors
    import requests

    from grader.engine import _short
    response = requests.Response()
    response.status_code = 500
    error = docker.errors.APIError("500 Server Error for http+docker://localhost/v1.41/containers/x/start",
                                   response=response, explanation="unable to find user app: no matching entries")
    assert _short(error) == "unable to find user app: no matching entries"
    assert _short(ValueError("plain\nsecond line")) == "plain"  # control: other errors keep their text
