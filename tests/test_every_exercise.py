"""Every exercise of the series survives the candidates a learner can hand it.

The per-notebook tests prove each checker right on correct and typical wrong answers; this
file proves the contract common to all of them: in learner mode a check never raises, the
stub reads "not attempted", and crashes, hangs, NaN and nonsense become a failed verdict.
"""

import math
import time

import pytest

from helpers.checking import _exercises, check

EXERCISES = sorted(_exercises())


class Stub:
    """Called like a function, built like a class, or subclassed: the unsolved exercise."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError("Exercise: replace this line with your code")


def crash(*args, **kwargs):
    raise RuntimeError("boom")


class Hang:
    """Called, built or subclassed: never returns."""

    entered = False

    def __init__(self, *args, **kwargs):
        Hang.entered = True
        while True:
            pass


def nan(*args, **kwargs):
    return math.nan


def test_the_series_has_every_notebook():
    assert {i.split(".")[0] for i in EXERCISES} >= {f"{n:02d}" for n in range(10)}


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_the_stub_is_not_attempted(exercise_id):
    result = check(exercise_id, Stub)
    assert result.status == "not attempted", str(result)


@pytest.mark.parametrize("exercise_id", EXERCISES)
@pytest.mark.parametrize("candidate", [crash, nan, None, "a string"], ids=["crash", "nan", "None", "str"])
def test_a_broken_candidate_fails_without_raising(exercise_id, candidate):
    result = check(exercise_id, candidate)
    assert result.status == "failed" and str(result).startswith(f"❌ Exercise {exercise_id}")
    assert "Traceback" not in str(result)


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_a_hanging_candidate_times_out(exercise_id):
    check(exercise_id, Stub)  # one-off imports outside the timing
    # The timer is the same at any length: a short one, as long as the candidate is reached (the
    # check's set-up takes up to ~20 ms idle, more on a loaded machine: then a longer one).
    for timeout in (0.05, 0.25, 1.0):
        Hang.entered = False
        start = time.perf_counter()
        result = check(exercise_id, Hang, timeout=timeout)
        if Hang.entered:
            break
    assert result.status == "failed" and f"after {timeout:g} s" in str(result), str(result)
    assert Hang.entered, "the deadline ended the check before it reached the candidate"
    assert time.perf_counter() - start < 5
