"""Shared fixtures: every test gets its own learner state; property tests are reproducible."""

import os
import sys

import pytest
from hypothesis import settings

# The same examples on every run, so CI never turns red by chance;
# HYPOTHESIS_PROFILE=explore draws new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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


@pytest.fixture(autouse=True)
def references_as_candidates(request, monkeypatch):
    """Checker tests run the references as candidates, which check() refuses to a learner;
    a test marked ``refuses_library`` sees the learner's rule."""
    if request.node.get_closest_marker("refuses_library") is None:
        from helpers import checking

        monkeypatch.setattr(checking, "_refuse_library", False)
