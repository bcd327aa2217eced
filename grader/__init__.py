"""grader: autograder for the course's Docker homework."""

__version__ = "0.1.0"
