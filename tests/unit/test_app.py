"""The composition root (grader/app.py): each part built once, when first asked for, from the
settings, and the same parts behind the CLI, the worker's tasks and the web app."""

from __future__ import annotations

import pytest

from grader.app import App
from grader.config import Settings
from grader.errors import ConfigError


def _settings(tmp_path, **more) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'g.db'}", work_dir=tmp_path / "work", **more)


def test_nothing_is_opened_before_it_is_asked_for(tmp_path):
    app = App(_settings(tmp_path))
    app.workbench  # noqa: B018 - `grader check` builds this and nothing else
    assert not (tmp_path / "g.db").exists()
    app.instructor.scoreboard()  # the store, and no GitLab token needed for it
    assert (tmp_path / "g.db").exists() and "gitlab" not in vars(app)


def test_the_service_is_built_once_with_the_roots_store_and_gitlab_and_the_courier_has_its_own(tmp_path):
    app = App(_settings(tmp_path, gitlab_url="http://gitlab.invalid", gitlab_token="t"))
    assert app.service is app.service
    assert app.service.store is app.store and app.service.gitlab is app.gitlab
    assert app.courier.store is not app.store and app.courier.gitlab is not app.gitlab
    app.close()
    assert "store" not in vars(app) and "service" not in vars(app)


def test_the_service_without_gitlab_settings_is_a_one_line_error_before_any_database_is_opened(tmp_path):
    app = App(_settings(tmp_path))
    with pytest.raises(ConfigError, match="GRADER_GITLAB_URL, GRADER_GITLAB_TOKEN"):
        app.service  # noqa: B018
    assert not (tmp_path / "g.db").exists()


def test_the_engine_factory_is_the_one_every_grading_uses(tmp_path):
    made = []
    app = App(_settings(tmp_path, gitlab_url="http://gitlab.invalid", gitlab_token="t"),
              engine=lambda settings: made.append(settings) or "engine")
    assert app.service.engine is app.engine and app.workbench.engine is app.engine
    assert app.service.engine(app.settings) == "engine" and made == [app.settings]


def test_the_process_root_follows_the_settings(monkeypatch):
    from grader import app as app_mod

    first = app_mod.root()
    assert app_mod.root() is first
    monkeypatch.setattr(app_mod, "get_settings", lambda: Settings(instance="other"))
    assert app_mod.root() is not first and app_mod.root().settings.instance == "other"
