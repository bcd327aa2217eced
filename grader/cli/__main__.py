"""`python -m grader.cli`, as the tests and the chaos hosts run it."""

from grader.cli import app

app()
