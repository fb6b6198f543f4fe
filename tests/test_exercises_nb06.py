"""Notebook 06 checkers: right answers pass however written, known wrong ones fail naming why."""

import functools
import math
import time

import pytest
import torch
from torch.optim import lr_scheduler

from helpers import lr_scheduler as ours
from helpers.checking import _exercises, check
from helpers.exercises import nb06
from helpers.optim import SGD as OurSGD

refuses_library = pytest.mark.refuses_library


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


def test_predictions_are_held_to_the_printed_precision():
    assert check("06.1", lambda: {**BY_HAND, "a": 0.05 + 1e-7}).passed
    for key, wrong in [("c", 0.73), ("a", 0.0501), ("d", 0.1001)]:
        result = check("06.1", lambda key=key, wrong=wrong: {**BY_HAND, key: wrong})
        assert result.status == "failed" and dict(result.details)["case"].startswith(f"{key}: ")


@refuses_library
def test_predictions_computed_by_running_the_schedulers_are_refused():
    def by_running():
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        scheduler = lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
        for _ in range(5):
            optimizer.step()
            scheduler.step()
        return {**BY_HAND, "a": optimizer.param_groups[0]["lr"]}

    def with_lr_curve():
        curve = ours.lr_curve(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), 4, lr=1.0)
        return {**BY_HAND, "c": curve[3]}

    assert "calls the reference lr_curve" in dict(check("06.1", with_lr_curve).details)["not an answer"]
    assert "calls torch's own StepLR" in dict(check("06.1", by_running).details)["not an answer"]
    assert check("06.1", lambda: dict(BY_HAND)).passed


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


@refuses_library
def test_warmup_cosine_from_the_library_is_refused():
    def from_wsd(step, warmup_steps, total_steps, base_lr, min_lr):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
        wsd = ours.WarmupStableDecay(optimizer, warmup_steps, 0, total_steps - warmup_steps,
                                     min_lr_ratio=min_lr / base_lr, decay="cosine")
        return wsd.factor(step)

    assert "calls the reference WarmupStableDecay" in dict(check("06.2", from_wsd).details)["not an answer"]
    refused = dict(check("06.2", nb06.warmup_cosine).details)["not an answer"]
    assert "this is the reference warmup_cosine" in refused
    assert check("06.2", warmup_cosine_torch).passed


def test_warmup_cosine_messages_count_optimizer_steps_from_1_and_round():
    details = dict(check("06.2", nb06.WARMUP_MISTAKES[next(iter(nb06.WARMUP_MISTAKES))]).details)  # (t+1)/W
    assert details["step"] == "1" and "factor at step=0 (warmup phase)" in details["detail"]
    assert (details["expected"], details["got"]) == ("0", "0.02")


def test_a_mistake_only_in_the_long_run_case_is_caught():
    def no_floor_after_150(step, warmup_steps, total_steps, base_lr, min_lr):
        if step > 150:
            return nb06.warmup_cosine(min(step, total_steps - 1), warmup_steps, total_steps, base_lr, min_lr)
        return nb06.warmup_cosine(step, warmup_steps, total_steps, base_lr, min_lr)

    result = check("06.2", no_floor_after_150)
    assert result.status == "failed" and "170 steps" in dict(result.details)["case"]


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


def test_the_last_multistep_hint_runs_in_the_notebook():
    # the notebook's `lr_scheduler` is a StepLR object (section 3); `optim` is torch.optim
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.8)
    namespace = {"optim": torch.optim, "optimizer": optimizer,
                 "lr_scheduler": lr_scheduler.StepLR(torch.optim.SGD([torch.zeros(1)], lr=100), step_size=4)}
    answer = eval(_exercises()["06.3"].hints[-1].removeprefix("return "), namespace)  # noqa: S307
    assert isinstance(answer, lr_scheduler.MultiStepLR)


def test_multistep_on_another_optimizer_is_diagnosed():
    other = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.8)
    result = check("06.3", lambda o: lr_scheduler.MultiStepLR(other, [20, 50, 70], 0.25))
    assert "the optimizer you are given" in _cause(result)


# --------------------------------------------------------------------------
# Shared: stubs, errors, speed
# --------------------------------------------------------------------------


@pytest.mark.parametrize("exercise", ["06.1", "06.2", "06.3", "06.4"])
def test_stub_is_not_attempted(exercise):
    assert check(exercise, stub).status == "not attempted"


@pytest.mark.parametrize("exercise", ["06.1", "06.2", "06.3", "06.4"])
def test_raising_candidate_is_reported(exercise):
    def broken(*args):
        raise KeyError("lr")

    result = check(exercise, broken)
    assert result.status == "failed"
    assert dict(result.details)["your code raised"] == "KeyError: 'lr'"


@pytest.mark.parametrize(
    ("exercise", "reference"),
    [("06.1", nb06.predictions), ("06.2", nb06.warmup_cosine), ("06.3", nb06.multistep_reference),
     ("06.4", nb06.train_one_cycle)],
)
def test_each_check_is_fast(exercise, reference):
    check(exercise, reference)
    start = time.perf_counter()
    assert check(exercise, reference).passed
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------
# 06.4 OneCycleLR per batch
# --------------------------------------------------------------------------


def test_one_cycle_reference_follows_torchs_and_helpers_schedules_and_sgd():
    for spec in nb06.ONE_CYCLE_CASES:
        _, epochs, B, n, features, outputs, max_lr, seed = spec
        run = nb06._run_one_cycle(nb06.train_one_cycle, spec)
        steps = epochs * B
        for make in (lr_scheduler.OneCycleLR, ours.OneCycleLR):
            schedule = functools.partial(make, max_lr=max_lr, total_steps=steps)
            assert ours.lr_curve(schedule, steps, lr=max_lr) == pytest.approx(run.used, rel=1e-12)
        assert run.returned == run.used
        # the same run with helpers' SGD and OneCycleLR, written out: the trained weights agree
        model, batches = nb06._one_cycle_task(B, n, features, outputs, seed)
        optimizer = OurSGD(model.parameters(), lr=max_lr, momentum=0.9)
        scheduler = ours.OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps)
        for _ in range(epochs):
            for x, y in batches:
                optimizer.zero_grad()
                ((model(x) - y) ** 2).mean().backward()
                optimizer.step()
                scheduler.step()
        for key, weight in model.state_dict().items():
            assert torch.allclose(weight, run.weights[key], rtol=1e-10, atol=1e-12)


def one_cycle_total_steps(model, batches, epochs, max_lr):
    """Right, written another way: total_steps, indices, a tuple, the loss by hand."""
    optimizer = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=epochs * len(batches))
    lrs = []
    for _ in range(epochs):
        for i in range(len(batches)):
            x, y = batches[i]
            optimizer.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            lrs.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
    return tuple(lrs)


@refuses_library
def test_one_cycle_right_answers_pass():
    assert check("06.4", one_cycle_total_steps).passed


@refuses_library
def test_one_cycle_reference_is_refused():
    assert "not an answer" in dict(check("06.4", nb06.train_one_cycle).details)
    result = check("06.4", lambda *args: nb06.train_one_cycle(*args))
    assert "calls the reference train_one_cycle" in dict(result.details)["not an answer"]


@pytest.mark.parametrize("cause", list(nb06.ONE_CYCLE_MISTAKES))
def test_one_cycle_mistakes_are_named(cause):
    result = check("06.4", nb06.ONE_CYCLE_MISTAKES[cause])
    assert result.status == "failed"
    assert _cause(result) == cause


def test_one_cycle_mistakes_fail_where_they_show():
    mistakes = list(nb06.ONE_CYCLE_MISTAKES.values())
    details = dict(check("06.4", mistakes[4]).details)  # scheduler.step() first
    assert details["step"] == "1"
    assert details["detail"].startswith("the lr that optimizer step 1 trained with")
    details = dict(check("06.4", mistakes[-1]).details)  # no zero_grad
    assert details["detail"].startswith("the trained model's weight after 12 steps")


def test_one_cycle_unexplained_and_malformed_answers():
    def twice_the_lr(model, batches, epochs, max_lr):
        return nb06.train_one_cycle(model, batches, epochs, 2 * max_lr)

    result = check("06.4", twice_the_lr)
    assert result.status == "failed" and "likely cause" not in dict(result.details)

    def per_epoch_log(model, batches, epochs, max_lr):
        return nb06.train_one_cycle(model, batches, epochs, max_lr)[:: len(batches)]

    result = check("06.4", per_epoch_log)
    assert dict(result.details)["got"] == "3 lrs in your list"
    assert "one optimizer step and one lr per batch: 3 × 4 = 12" in _cause(result)
    assert "forget `return`" in _cause(check("06.4", lambda *args: None))
