"""Shared fixtures: every test gets its own learner state."""

import sys

import pytest


@pytest.fixture(autouse=True)
def stepwise_home(tmp_path, monkeypatch):
    """Point STEPWISE_HOME at a fresh directory and forget this process's checks and hints."""
    home = tmp_path / "stepwise_home"
    monkeypatch.setenv("STEPWISE_HOME", str(home))
    monkeypatch.delenv("STEPWISE_GRADING", raising=False)
    monkeypatch.delenv("STEPWISE_CHECK_TIMEOUT", raising=False)
    checking = sys.modules.get("helpers.checking")
    if checking is not None:
        checking._latest.clear()
        checking._hints_shown.clear()
    return home
