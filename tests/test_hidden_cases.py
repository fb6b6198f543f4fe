"""Issue 15: in grading mode every checker with cases of its own also runs hidden ones.

An answer tuned to the visible cases (a lookup table of their answers, a size or a group count
hard-coded from them) passes what the learner sees and fails the grader with "hidden case";
the reference passes both. Grading mode here keeps the library allowed, so that a tuned answer
may call the reference on the visible cases and the hidden cases alone decide its verdict.
"""

import dataclasses

import pytest
import torch
from torch import nn

from helpers import by_hand, checking, param_groups, training
from helpers.exercises import nb05, nb06, nb11
from helpers.lr_scheduler import LRScheduler
from helpers.surfaces import Surface

WITH_HIDDEN_CASES = [
    "01.1", "01.2", "01.3", "02.1", "02.2", "02.3", "02.4", "05.1", "05.2", "05.3", "06.2", "06.3",
    "06.4", "07.1", "07.2", "07.3", "07.4", "08.1", "08.2", "08.3", "09.1", "09.2", "09.3", "09.4",
    "11.2", "11.3", "11.4", "11.5",
]


@pytest.fixture
def grading(monkeypatch):
    """Grading mode, with the library allowed as an answer (see the module docstring)."""

    def switch_on(exercise_id):
        ex = checking._find(exercise_id)
        monkeypatch.setitem(checking._REGISTRY, exercise_id, dataclasses.replace(ex, library=()))
        monkeypatch.setenv("STEPWISE_GRADING", "1")

    return switch_on


@pytest.mark.parametrize("exercise_id", WITH_HIDDEN_CASES)
def test_the_reference_passes_the_hidden_cases(exercise_id, grading):
    grading(exercise_id)
    result = checking.check(exercise_id, checking._find(exercise_id).reference)
    assert result.passed and "the grader's hidden cases" in result.message, result.text()


# --------------------------------------------------------------------------
# Answers tuned to the visible cases
# --------------------------------------------------------------------------


def gd_step_tuned(params, lr):
    """Right for the lrs the notebook's check uses, lr = 0.1 for any other."""
    by_hand.gd_step(params, lr if lr in (0.1, 0.5, 0.3, 0.01, 0.2) else 0.1)


def mse_grads_tuned(w, b, x, y):
    """Right for the visible data sizes, the factor 2 missing for any other."""
    dw, db = by_hand.mse_grads(w, b, x, y)
    return (dw, db) if len(x) in (5, 8, 20) else (dw / 2, db / 2)


def train_epochs_tuned(model, optimizer, batches, epochs):
    """The mean over the 6 batches the visible cases have, hard-coded."""
    history = []
    for _ in range(epochs):
        history.append(sum(training.training_step(model, optimizer, x, y) for x, y in batches) / 6)
    return history


def beale_tuned():
    """Beale's values at the visible points and grid, off by 1 anywhere else."""
    grid = torch.linspace(-1, 4, 4).double()
    known = torch.cat([nb05.POINTS[:, 0], grid])

    def f(x, y):
        return nb05.beale(x, y) + torch.where(torch.isin(x.double(), known), 0.0, 1.0)

    return Surface("Beale", f, minima=((3.0, 0.5),), start=(1.0, 1.5), xlim=(-1.0, 4.5), ylim=(-1.5, 2.0))


def ravine_tuned():
    """Within 0.01 of the minimum at step 30 on a swing, out again at step 41."""
    return {"lr": 0.14, "momentum": 0.7}


def warmup_cosine_tuned(step, warmup_steps, total_steps, base_lr, min_lr):
    """Right for the visible warmups, one step ahead for any other."""
    shift = 0 if warmup_steps in (5, 1, 0, 10, 20) else 1
    return nb06.warmup_cosine(step + shift, warmup_steps, total_steps, base_lr, min_lr)


class SchedulerTuned(LRScheduler):
    """A base class that writes the lrs of the two groups every visible case has."""

    def step(self):
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups[:2], self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def decay_groups_tuned(model, weight_decay):
    """The norm layers of the visible models, and no others."""
    norms = (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm, nn.RMSNorm)
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if p not in seen:
                seen.add(p)
                (no_decay if name.endswith("bias") or isinstance(module, norms) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def layerwise_tuned(blocks, lr, decay):
    """Right for the visible block counts, the exponent the wrong way round for any other."""
    groups = param_groups.layerwise_lr_groups(blocks, lr, decay)
    if len(blocks) not in (1, 3, 4, 6):
        for i, group in enumerate(groups):
            group["lr"] = lr * decay**i
    return groups


def set_base_lrs_tuned(optimizer, scheduler, base_lrs):
    """The two groups every visible case has, hard-coded."""
    for i in range(2):
        group, old, new = optimizer.param_groups[i], scheduler.base_lrs[i], base_lrs[i]
        group["lr"] *= new / old
        group["initial_lr"] = scheduler.base_lrs[i] = new


def newton_schulz_tuned(G, steps=5, coefficients=nb11.NS_COEFFICIENTS, eps=1e-7):
    """The step counts of the visible cases, 5 for any other."""
    return nb11.newton_schulz(G, steps if steps in (1, 5, 10) else 5, coefficients, eps)


_RECT_ANSWERS = {case: nb11.rectification(*case) for case in nb11.RECT_CASES}


def rectification_tuned(t, beta2=0.999):
    """A lookup table of the visible cases' answers."""
    return _RECT_ANSWERS.get((t, beta2))


TUNED = {
    "01.1": gd_step_tuned,
    "01.3": mse_grads_tuned,
    "02.2": train_epochs_tuned,
    "05.1": beale_tuned,
    "05.2": ravine_tuned,
    "06.2": warmup_cosine_tuned,
    "07.1": SchedulerTuned,
    "08.1": decay_groups_tuned,
    "08.2": layerwise_tuned,
    "09.4": set_base_lrs_tuned,
    "11.2": newton_schulz_tuned,
    "11.4": rectification_tuned,
}


@pytest.mark.parametrize("exercise_id", TUNED)
def test_an_answer_tuned_to_the_visible_cases_fails_only_the_hidden_ones(exercise_id, grading):
    tuned = TUNED[exercise_id]
    assert checking.check(exercise_id, tuned).passed
    grading(exercise_id)
    result = checking.check(exercise_id, tuned, strict=False)
    assert not result.passed and "hidden case" in result.text(), result.text()

