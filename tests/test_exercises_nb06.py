"""Notebook 06 checkers: right answers pass however written, known wrong ones fail naming why."""

import math
import time

import pytest
import torch
from torch.optim import lr_scheduler

from helpers import lr_scheduler as ours
from helpers.checking import check
from helpers.exercises import nb06


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise 06.K: replace this line with your code")


def _cause(result):
    return dict(result.details).get("likely cause", "")


# --------------------------------------------------------------------------
# 06.1 predictions
# --------------------------------------------------------------------------

# Worked out by hand from the schedulers' documented formulas, epoch e = e − 1 steps.
BY_HAND = {"a": 0.05, "b": 0.1, "c": 0.729, "d": 0.1, "e": 0.1, "f": 0.5}


def test_reference_predictions_are_the_hand_values_and_torchs():
    for key, value in nb06.predictions().items():
        assert math.isclose(value, BY_HAND[key], rel_tol=1e-12)
        assert math.isclose(value, nb06.PREDICTIONS[key].expected(), rel_tol=1e-12)


def test_predictions_pass_as_rounded_numbers_or_tensors():
    assert check("06.1", nb06.predictions).passed
    assert check("06.1", lambda: dict(BY_HAND)).passed
    assert check("06.1", lambda: {**BY_HAND, "c": torch.tensor(0.9) ** 3}).passed


@pytest.mark.parametrize(
    ("key", "wrong", "cause"),
    [
        ("a", 0.025, "that is the lr of epoch 7"),
        ("b", 0.01, "that is the lr of epoch 6"),
        ("c", 0.7, "it does not subtract"),
        ("e", 0.4, "the constructor already sets the first lr"),
        ("f", 0.125, "restarts ExponentialLR at its step 0"),
    ],
)
def test_wrong_prediction_names_question_and_cause(key, wrong, cause):
    result = check("06.1", lambda: {**BY_HAND, key: wrong})
    assert result.status == "failed"
    details = dict(result.details)
    assert details["case"].startswith(f"{key}: ")
    assert details["got"] == repr(float(wrong))
    assert cause in details["likely cause"]


def test_unexplained_wrong_prediction_has_no_made_up_cause():
    result = check("06.1", lambda: {**BY_HAND, "d": 0.123})
    assert dict(result.details)["expected"] == "0.1" and "likely cause" not in dict(result.details)


def test_incomplete_or_malformed_answers():
    missing = check("06.1", lambda: {k: v for k, v in BY_HAND.items() if k != "b"})
    assert "no key 'b'" in _cause(missing)
    unfilled = check("06.1", lambda: {**BY_HAND, "e": None})
    assert "fill in a number" in _cause(unfilled)
    assert "forget `return`" in _cause(check("06.1", lambda: None))
    assert "a dict" in _cause(check("06.1", lambda: [0.05, 0.1]))


# --------------------------------------------------------------------------
# 06.2 warmup + cosine
# --------------------------------------------------------------------------


def warmup_cosine_torch(step, warmup_steps, total_steps, base_lr, min_lr):
    """Differently written: clamp the progress, torch math, lr computed first."""
    if step < warmup_steps:
        return step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    cosine = 0.5 * (1 + torch.cos(torch.tensor(math.pi * progress, dtype=torch.float64)).item())
    return (min_lr + (base_lr - min_lr) * cosine) / base_lr


def test_warmup_cosine_reference_follows_the_formula_by_hand():
    f = nb06.warmup_cosine
    assert [f(t, 4, 12, 1.0, 0.0) for t in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert math.isclose(f(8, 4, 12, 2.0, 0.4), (0.4 + 1.6 * 0.5) / 2.0)  # cosine half-way
    assert f(12, 4, 12, 2.0, 0.4) == f(50, 4, 12, 2.0, 0.4) == pytest.approx(0.2)


def test_warmup_cosine_passes_reference_and_other_writing():
    assert check("06.2", nb06.warmup_cosine).passed
    assert check("06.2", warmup_cosine_torch).passed


@pytest.mark.parametrize("cause", list(nb06.WARMUP_MISTAKES))
def test_warmup_cosine_mistakes_are_named(cause):
    result = check("06.2", nb06.WARMUP_MISTAKES[cause])
    assert result.status == "failed"
    assert _cause(result) == cause


def test_warmup_cosine_division_by_zero_names_the_no_warmup_case():
    def ramp_first(step, warmup_steps, total_steps, base_lr, min_lr):
        warm = min(1.0, step / warmup_steps)
        return warm * nb06.warmup_cosine(max(step, warmup_steps), warmup_steps, total_steps, base_lr, min_lr)

    result = check("06.2", ramp_first)
    details = dict(result.details)
    assert details["case"].startswith("no warmup")
    assert details["your code raised"].startswith("ZeroDivisionError")


def test_warmup_cosine_missing_return():
    result = check("06.2", lambda *args: None)
    assert "forget `return`" in _cause(result)


# --------------------------------------------------------------------------
# 06.3 MultiStepLR for a curve
# --------------------------------------------------------------------------


def test_target_is_the_reference_schedule():
    assert ours.lr_curve(nb06.multistep_reference, 90, lr=0.8) == pytest.approx(nb06.TARGET, rel=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        nb06.multistep_reference,
        lambda o: ours.MultiStepLR(o, milestones=[20, 50, 70], gamma=0.25),
        lambda o: lr_scheduler.MultiStepLR(o, milestones=(70, 20, 50), gamma=1 / 4),
    ],
    ids=["reference", "helpers' MultiStepLR", "unsorted tuple"],
)
def test_multistep_right_answers_pass(make):
    assert check("06.3", make).passed


@pytest.mark.parametrize(
    ("make", "cause"),
    [
        (lambda o: lr_scheduler.MultiStepLR(o, [21, 51, 71], 0.25), "one epoch late"),
        (lambda o: lr_scheduler.MultiStepLR(o, [19, 49, 69], 0.25), "one epoch early"),
        (lambda o: lr_scheduler.MultiStepLR(o, [20, 50, 70], 4), "your lr goes up (×4)"),
        (lambda o: lr_scheduler.MultiStepLR(o, [20, 50, 70], 0.5), "multiply the lr by 0.5"),
        (lambda o: lr_scheduler.MultiStepLR(o, [20, 50], 0.25), "the target drops 3 times and yours 2"),
        (lambda o: lr_scheduler.MultiStepLR(o, [100], 0.25), "the lr never changes"),
        (lambda o: lr_scheduler.StepLR(o, 20, 0.25), "return MultiStepLR"),
    ],
    ids=["late", "early", "gamma>1", "gamma", "too few", "never", "StepLR"],
)
def test_multistep_mistakes_are_named(make, cause):
    result = check("06.3", make)
    assert result.status == "failed"
    assert cause in _cause(result)


def test_multistep_on_another_optimizer_is_diagnosed():
    other = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.8)
    result = check("06.3", lambda o: lr_scheduler.MultiStepLR(other, [20, 50, 70], 0.25))
    assert "the optimizer you are given" in _cause(result)


# --------------------------------------------------------------------------
# Shared: stubs, errors, speed
# --------------------------------------------------------------------------


@pytest.mark.parametrize("exercise", ["06.1", "06.2", "06.3"])
def test_stub_is_not_attempted(exercise):
    assert check(exercise, stub).status == "not attempted"


@pytest.mark.parametrize("exercise", ["06.1", "06.2", "06.3"])
def test_raising_candidate_is_reported(exercise):
    def broken(*args):
        raise KeyError("lr")

    result = check(exercise, broken)
    assert result.status == "failed"
    assert dict(result.details)["your code raised"] == "KeyError: 'lr'"


@pytest.mark.parametrize(
    ("exercise", "reference"),
    [("06.1", nb06.predictions), ("06.2", nb06.warmup_cosine), ("06.3", nb06.multistep_reference)],
)
def test_each_check_is_fast(exercise, reference):
    check(exercise, reference)
    start = time.perf_counter()
    assert check(exercise, reference).passed
    assert time.perf_counter() - start < 1.0
