# The two commands of the README: `make demo` (set up, then grade the bundled reference)
# and `make test` (set up, then run every test, Docker ones included).
PY := .venv/bin/python
GRADER := .venv/bin/grader

.PHONY: setup demo test test-fast test-pure test-oldest typecheck lint bench

setup:
	scripts/setup

demo: setup
	$(GRADER) check tests/fixtures/reference

test: setup
	.venv/bin/pytest

test-fast:
	.venv/bin/pytest -m "not docker"

# Nothing but Python: no engine, no Redis, no PostgreSQL, no browser (a laptop).
test-pure:
	.venv/bin/pytest -m "not docker and not services and not browser"

# The same tests on Debian's Python 3.11.2, which the worker image on the local base runs.
test-oldest:
	scripts/test-oldest

# mypy over grader/ and checks/, as configured in pyproject.toml's [tool.mypy].
typecheck: setup
	.venv/bin/mypy

lint:
	.venv/bin/ruff check grader checks tests scripts/bench scripts/throughput

bench: setup
	$(PY) scripts/bench
