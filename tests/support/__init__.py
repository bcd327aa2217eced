"""Test support code that is not a test: the GitLab-compatible test server and its helpers."""
