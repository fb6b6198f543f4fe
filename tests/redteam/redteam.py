"""The harness of the red-team tests: a wrong answer fails, visibly or in the hidden pass, and
any likely cause it is told is the mistake it makes."""

import pytest

from helpers import checking


def causes(result):
    return [value for label, value in result.details if label == "likely cause"]


def assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only=False):
    """``cause``: a fragment of the one likely cause the message must name, or None for none.

    Checked in the notebook's pass; a wrong answer ``hidden_only`` passes what the learner sees
    and must fail the grader's (which runs the visible cases, then hidden ones).
    """
    for grading in (False, True) if hidden_only else (False,):
        if grading:
            monkeypatch.setenv("STEPWISE_GRADING", "1")
        result = checking.check(exercise_id, candidate, strict=False)
        if not grading and hidden_only:
            assert result.passed, result.text()
            continue
        assert not result.passed, result.text()
        named = causes(result)
        if cause is None:
            assert not named, result.text()
        else:
            assert len(named) == 1 and cause in named[0], result.text()


def cases(wrong):
    """pytest parameters of a list of (exercise id, candidate, cause[, hidden_only])."""
    return [pytest.param(*case, id=f"{case[0]}-{case[1].__name__}") for case in wrong]
