"""Notebook 06, learning-rate schedulers: predict, build and reproduce schedules.

Every expected value comes from running torch's own schedulers (``lr_curve``)
or from ``helpers.lr_scheduler.WarmupStableDecay``, never from the reference
answers below; the tests prove that the two agree.
"""

import functools
import math
import warnings
from dataclasses import dataclass, field

import torch
from torch.optim import lr_scheduler

from helpers import lr_scheduler as ours
from torch.optim.optimizer import register_optimizer_step_pre_hook

from helpers.checking import Mismatch, case, exercise, hidden_pass, untimed
from helpers.checking_tools import shown_pair
from helpers.lr_scheduler import WarmupStableDecay, lr_curve


@functools.cache
def _warm_up():
    """torch's first optimizer.step() imports a lot (seconds on a busy machine): not the candidate's time."""
    with untimed():
        lr_curve(lambda o: lr_scheduler.StepLR(o, step_size=1), 2)


def _lr_at_epoch(make, lr, epoch):
    """The lr that epoch ``epoch`` (from 1) trains with: after epoch − 1 scheduler steps."""
    return lr_curve(make, epoch, lr=lr)[epoch - 1]


def _number(value):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


# --------------------------------------------------------------------------
# 06.1 — predict the lr
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """One question of 06.1: which lr does ``epoch`` print in the loop
    "print lr → train (optimizer.step()) → scheduler.step()"?"""

    label: str
    make: object  # optimizer -> torch scheduler
    lr: float
    epoch: int
    misreadings: dict = field(default_factory=dict)  # {a wrong answer: why one gets it}

    def expected(self):
        return _lr_at_epoch(self.make, self.lr, self.epoch)

    def one_ahead(self):
        return _lr_at_epoch(self.make, self.lr, self.epoch + 1)


S = lr_scheduler
PREDICTIONS = {
    "a": Prediction(
        "StepLR(step_size=3, gamma=0.5), lr 0.1, epoch 6",
        lambda o: S.StepLR(o, step_size=3, gamma=0.5), 0.1, 6,
    ),
    "b": Prediction(
        "MultiStepLR(milestones=[2, 5], gamma=0.1), lr 1.0, epoch 5",
        lambda o: S.MultiStepLR(o, milestones=[2, 5], gamma=0.1), 1.0, 5,
    ),
    "c": Prediction(
        "ExponentialLR(gamma=0.9), lr 1.0, epoch 4",
        lambda o: S.ExponentialLR(o, gamma=0.9), 1.0, 4,
        {0.7: "gamma multiplies the lr at every step (1.0·0.9·0.9·0.9); it does not subtract 0.1"},
    ),
    "d": Prediction(
        "CosineAnnealingLR(T_max=10), lr 0.2, epoch 6",
        lambda o: S.CosineAnnealingLR(o, T_max=10), 0.2, 6,
    ),
    "e": Prediction(
        "LinearLR(start_factor=0.25, total_iters=4), lr 0.4, epoch 1",
        lambda o: S.LinearLR(o, start_factor=0.25, total_iters=4), 0.4, 1,
        {0.4: "the constructor already sets the first lr of the schedule, "
              "start_factor · lr = 0.25 · 0.4, before epoch 1 trains"},
    ),
    "f": Prediction(
        "SequentialLR([LinearLR(start_factor=0.5, total_iters=2), ExponentialLR(gamma=0.5)], "
        "milestones=[2]), lr 1.0, epoch 4",
        lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.5, total_iters=2),
                                     S.ExponentialLR(o, gamma=0.5)], milestones=[2]),
        1.0, 4,
        {0.125: "at the milestone SequentialLR restarts ExponentialLR at its step 0 (lr 1.0), so "
                "epoch 4, one step past the milestone, has 1.0·0.5; it does not count from epoch 1"},
    ),
}


def predictions():
    """The answers of 06.1, each written as the scheduler's formula.

    Epoch e trains with the lr after e − 1 calls of scheduler.step().
    """
    return {
        "a": 0.1 * 0.5 ** (5 // 3),                              # StepLR: ⌊5/3⌋ = 1 decay
        "b": 1.0 * 0.1 ** 1,                                     # milestone 2 ≤ 4 < 5
        "c": 1.0 * 0.9**3,                                       # three steps
        "d": 0.2 * (1 + math.cos(math.pi * 5 / 10)) / 2,         # half-way down the cosine
        "e": 0.4 * 0.25,                                         # step 0: start_factor · lr
        "f": 1.0 * 0.5 ** (3 - 2),                               # ExponentialLR from step 2
    }


def _close(expected, got):
    """Within the notebook's printed precision (4 decimals) and far tighter for these round answers."""
    return math.isclose(expected, got, rel_tol=1e-4, abs_tol=1e-12)


@exercise("06.1", "Predict the learning rate", reference=predictions,
          library=[lr_curve, S.StepLR, S.MultiStepLR, S.ExponentialLR, S.CosineAnnealingLR, S.LinearLR,
                   S.SequentialLR, ours.StepLR, ours.MultiStepLR, ours.ExponentialLR, ours.CosineAnnealingLR,
                   ours.LinearLR, ours.SequentialLR], hints=[
    "Epoch e prints the lr *before* its own scheduler.step(): after e − 1 calls. The constructor "
    "has already set the lr of step 0, so epoch 1 prints it.",
    "StepLR: lr·gamma^⌊t/step_size⌋. MultiStepLR: lr·gamma^(milestones ≤ t). ExponentialLR: "
    "lr·gamma^t. CosineAnnealingLR: lr·(1 + cos(π·t/T_max))/2. LinearLR: lr·(start_factor + "
    "(1 − start_factor)·t/total_iters). Here t = e − 1.",
    "SequentialLR hands over at the milestone: from step 2 on, ExponentialLR runs as if freshly "
    "started, lr·0.5^(t − 2). Answers: a 0.05, b 0.1, c 0.729, d 0.1, e 0.1, f 0.5.",
])
def check_predictions(candidate):
    _warm_up()
    with case("calling your function"):
        answers = candidate()
    if not isinstance(answers, dict):
        raise Mismatch("your answers", "a dict {'a': lr, …, 'f': lr}", answers,
                       cause="return a dict with one predicted lr per question a–f"
                             + (" (did you forget `return`?)" if answers is None else ""))
    for key, question in PREDICTIONS.items():
        label = f"{key}: {question.label}"
        if key not in answers:
            raise Mismatch(label, "a number", "nothing", cause=f"your dict has no key {key!r}")
        got = _number(answers[key])
        if got is None:
            raise Mismatch(label, "a number", answers[key],
                           cause="fill in a number (a float like 0.5 or an expression like 0.9**2)")
        expected = question.expected()
        if _close(expected, got):
            continue
        cause = next((why for wrong, why in question.misreadings.items() if _close(wrong, got)), None)
        if cause is None and _close(question.one_ahead(), got):
            cause = (f"that is the lr of epoch {question.epoch + 1}: epoch {question.epoch} trains "
                     f"with the lr set by {question.epoch - 1} calls of scheduler.step(), "
                     "not by its own call, which comes after its training")
        raise Mismatch(label, round(expected, 6), got, cause=cause)
    return f"{len(PREDICTIONS)} predictions (StepLR, MultiStepLR, ExponentialLR, " \
           "CosineAnnealingLR, LinearLR, SequentialLR) match torch's schedulers"


# --------------------------------------------------------------------------
# 06.2 — warmup + cosine with LambdaLR
# --------------------------------------------------------------------------


def warmup_cosine(step, warmup_steps, total_steps, base_lr, min_lr):
    """The factor LambdaLR multiplies ``base_lr`` (the optimizer's initial lr) by at ``step``.

    lr_t = base_lr · t / W                                          for t < W
    lr_t = min_lr + (base_lr − min_lr) · (1 + cos(π (t − W)/(T − W))) / 2   for W ≤ t ≤ T
    lr_t = min_lr                                                   for t > T
    """
    if step < warmup_steps:
        return step / warmup_steps
    if step >= total_steps:
        return min_lr / base_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    lr = min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2
    return lr / base_lr


def _mistake(warmup, cosine, after=None, warmup_lr=False):
    """A wrong factor function built from its phases; ``after`` None keeps the cosine going;
    ``warmup_lr``: the warmup returns an lr instead of a factor."""

    def factor(t, W, T, base, low):
        if t < W:
            return warmup(t, W) * (base if warmup_lr else 1)
        if after is not None and t >= T:
            return after(base, low)
        return cosine(t, W, T, base, low)

    return factor


def _cos(progress):
    return (1 + math.cos(math.pi * progress)) / 2


def _ratio_cosine(t, W, T, base, low):
    return (low + (base - low) * _cos((t - W) / (T - W))) / base


WARMUP_MISTAKES = {
    "your warmup is one step ahead, (t + 1)/W: LambdaLR calls your function with t = 0 for "
    "the first step, whose lr must be 0, and the warmup ends at t = W with the full lr":
        _mistake(lambda t, W: (t + 1) / W, _ratio_cosine, lambda base, low: low / base),
    "your function returns the learning rate itself, but LambdaLR multiplies the optimizer's "
    "*initial* lr by what you return (lr = base_lr · factor): return lr_t / base_lr":
        lambda t, W, T, base, low: base * warmup_cosine(t, W, T, base, low),
    "you used min_lr as a factor: LambdaLR multiplies base_lr by your result, so the floor "
    "factor is min_lr / base_lr":
        _mistake(lambda t, W: t / W, lambda t, W, T, base, low: low + (1 - low) * _cos((t - W) / (T - W)),
                 lambda base, low: low),
    "after total_steps your cosine rises again: hold min_lr for t ≥ total_steps":
        _mistake(lambda t, W: t / W, _ratio_cosine),
    "your cosine runs over all total_steps from step 0, but it should start at the end of the "
    "warmup: progress = (t − W)/(T − W)":
        _mistake(lambda t, W: t / W, lambda t, W, T, base, low: (low + (base - low) * _cos(t / T)) / base,
                 lambda base, low: low / base),
    "your cosine's progress is (t − W)/T: it starts at the end of the warmup but spreads over "
    "total_steps, so it has not reached min_lr at step T; it lasts T − W steps: (t − W)/(T − W)":
        _mistake(lambda t, W: t / W,
                 lambda t, W, T, base, low: (low + (base - low) * _cos((t - W) / T)) / base,
                 lambda base, low: low / base),
    "your warmup returns the learning rate base_lr·t/W, not the factor t/W: LambdaLR multiplies "
    "it by base_lr once more":
        _mistake(lambda t, W: t / W, _ratio_cosine, lambda base, low: low / base, warmup_lr=True),
}

WARMUP_CASES = (  # (name, W, T, base_lr, min_lr, steps run)
    ("W=5, T=20, base_lr=0.1, min_lr=0.001", 5, 20, 0.1, 0.001, 25),
    ("W=1, T=10, base_lr=2.0, min_lr=0.0", 1, 10, 2.0, 0.0, 12),
    ("no warmup: W=0, T=8, base_lr=0.5, min_lr=0.05", 0, 8, 0.5, 0.05, 10),
    ("W=10, T=100, base_lr=3e-4, min_lr=3e-5", 10, 100, 3e-4, 3e-5, 105),
    ("W=20, T=150, base_lr=0.05, min_lr=5e-4, 170 steps", 20, 150, 0.05, 5e-4, 170),
)
WARMUP_HIDDEN = (  # issue 15, grading: settings the notebook never shows
    ("hidden: W=3, T=13, base_lr=0.7, min_lr=0.07", 3, 13, 0.7, 0.07, 16),
    ("hidden: W=7, T=31, base_lr=1e-3, min_lr=0.0", 7, 31, 1e-3, 0.0, 36),
)


def _lambda_lrs(factor, W, T, base, low, steps):
    """The lr of every step under LambdaLR(optimizer with lr=base, t ↦ factor(t, W, T, base, low))."""
    return lr_curve(lambda o: lr_scheduler.LambdaLR(o, lambda t: factor(t, W, T, base, low)),
                    steps, lr=base)


def _reference_lrs(W, T, base, low, steps):
    """The same schedule from helpers: WSD with no stable phase and a cosine decay."""
    return lr_curve(lambda o: WarmupStableDecay(o, W, 0, T - W, min_lr_ratio=low / base, decay="cosine"),
                    steps, lr=base)


def _phase(t, W, T):
    if t < W:
        return "warmup"
    return "cosine" if t <= T else "after total_steps"


@exercise("06.2", "Warmup + cosine with LambdaLR", reference=warmup_cosine,
          library=[WarmupStableDecay, S.CosineAnnealingLR, ours.CosineAnnealingLR], hints=[
    "LambdaLR sets lr = initial_lr · factor(t), with t = 0 at construction. So return the lr you "
    "want divided by base_lr. Three phases: t < warmup_steps, up to total_steps, after.",
    "Warmup: t / warmup_steps (0 at t = 0, reaching 1 at t = warmup_steps, where the cosine "
    "starts). Cosine: progress p = (t − W)/(T − W), lr = min_lr + (base_lr − min_lr)·(1 + cos(πp))/2.",
    "if step < warmup_steps: return step / warmup_steps; if step >= total_steps: return "
    "min_lr / base_lr; otherwise p = (step − W)/(T − W) and return (min_lr + (base_lr − min_lr)"
    "·(1 + math.cos(math.pi·p))/2) / base_lr.",
])
def check_warmup_cosine(candidate):
    _warm_up()
    passed = []
    for name, W, T, base, low, steps in WARMUP_HIDDEN if hidden_pass() else WARMUP_CASES:
        with case(name):
            first = candidate(0, W, T, base, low)
        if _number(first) is None:
            raise Mismatch(name, "a number", first, step=0,
                           cause="return the factor as a number"
                                 + (" (did you forget `return`?)" if first is None else ""))
        expected = _reference_lrs(W, T, base, low, steps)
        with case(name):
            got = [float(lr) for lr in _lambda_lrs(candidate, W, T, base, low, steps)]
        for t, (e, g) in enumerate(zip(expected, got)):
            if not math.isclose(e, g, rel_tol=1e-9, abs_tol=1e-15):
                runs = [((W, T, base, low), got), *passed]
                cause = next((why for why, wrong in WARMUP_MISTAKES.items() if _replays(wrong, runs)), None)
                want, have = shown_pair(e, g)
                raise Mismatch(name, want, have, step=t + 1,
                               detail=f"the lr of optimizer step {t + 1}: LambdaLR's base_lr · your "
                                      f"factor at step={t} ({_phase(t, W, T)} phase)", cause=cause)
        passed.append(((W, T, base, low), got))
    return (f"{len(WARMUP_CASES)} settings (with and without warmup, past total_steps, up to "
            f"{max(c[-1] for c in WARMUP_CASES)} steps): LambdaLR with your factor gives the lr of "
            "WarmupStableDecay at every step")


def _replays(wrong, runs):
    """True if the factor ``wrong`` gives the lrs of every ``((W, T, base_lr, min_lr), lrs)``."""
    try:
        return all(_same_lrs(_lambda_lrs(wrong, *settings, len(lrs)), lrs) for settings, lrs in runs)
    except Exception:  # noqa: BLE001 (a mistake that crashes reproduces nothing)
        return False


def _same_lrs(a, b):
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15) for x, y in zip(a, b))


# --------------------------------------------------------------------------
# 06.3 — milestones and gamma for a given curve
# --------------------------------------------------------------------------

TARGET_LR = 0.8
TARGET = [0.8] * 20 + [0.2] * 30 + [0.05] * 20 + [0.0125] * 20  # the lr of epochs 1–90


def multistep_reference(optimizer):
    """The MultiStepLR that reproduces TARGET."""
    return lr_scheduler.MultiStepLR(optimizer, milestones=[20, 50, 70], gamma=0.25)


def _changes(lrs):
    """[(step, new lr)] of every step where the lr changes."""
    return [(t, lrs[t]) for t in range(1, len(lrs)) if not math.isclose(lrs[t], lrs[t - 1])]


def _curve_cause(expected, got):
    """Why ``got`` differs from ``expected``, read from where and how the lr changes."""
    want, have = _changes(expected), _changes(got)
    if not have:
        return ("the lr never changes: build the scheduler on the optimizer you are given, "
                "and give it milestones within the 90 epochs")
    if len(have) != len(want):
        return f"the target drops {len(want)} times and yours {len(have)}: one milestone per drop"
    shifts = {h - w for (w, _), (h, _) in zip(want, have)}
    if shifts == {1}:
        return ("each of your drops comes one epoch late: the lr changes *after* scheduler.step() "
                "has been called m times, so milestone m is first used by epoch m + 1; the "
                "epoch numbers 21, 51, 71 are one more than the milestones")
    if shifts == {-1}:
        return "each of your drops comes one epoch early: milestone m is first used by epoch m + 1"
    if shifts == {0}:
        ratio = have[0][1] / got[have[0][0] - 1]
        if ratio > 1:
            return (f"your lr goes up (×{ratio:g}) at each milestone: gamma is the factor the "
                    "lr is multiplied by, so it is below 1 for a decay")
        return (f"your drops are at the right epochs but multiply the lr by {ratio:g}: gamma is "
                "the ratio new lr / old lr of one drop")
    return "your drops are at other epochs than the target's: read off where the lr changes"


@exercise("06.3", "MultiStepLR for a given curve", reference=multistep_reference, hints=[
    "Read off the epochs where the lr changes, and by which factor. Each drop is one milestone; "
    "MultiStepLR multiplies the lr by the same gamma at every milestone.",
    "Epoch e trains with the lr after e − 1 scheduler steps, and milestone m takes effect after "
    "m steps. So a drop first seen in epoch 21 is milestone 20. gamma = 0.2 / 0.8.",
    "return optim.lr_scheduler.MultiStepLR(optimizer, milestones=[20, 50, 70], gamma=0.25)",
])
def check_multistep(candidate):
    _warm_up()
    name = f"the target curve: lr {TARGET_LR}, {len(TARGET)} epochs"
    with case(name), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's order warning, if built on another optimizer
        got = lr_curve(candidate, len(TARGET), lr=TARGET_LR)
    param = torch.zeros(1, requires_grad=True)
    with case(name):
        scheduler = candidate(torch.optim.SGD([param], lr=TARGET_LR))
    if not isinstance(scheduler, (lr_scheduler.MultiStepLR, ours.MultiStepLR)):
        raise Mismatch(name, "a MultiStepLR", type(scheduler).__name__,
                       cause="return MultiStepLR(optimizer, milestones=[…], gamma=…): this "
                             "exercise is about choosing its milestones and gamma")
    for t, (e, g) in enumerate(zip(TARGET, got)):
        if not math.isclose(e, g, rel_tol=1e-9):
            want, have = shown_pair(e, g)
            raise Mismatch(name, want, have, detail=f"the lr of epoch {t + 1} (after {t} scheduler steps)",
                           cause=_curve_cause(TARGET, got))
    if hidden_pass():  # issue 15, grading: the same milestones on another lr, for 120 epochs
        _expect_target_scaled(candidate, 0.3, 120)
    return f"MultiStepLR gives the target lr in all {len(TARGET)} epochs"


def _expect_target_scaled(candidate, lr, epochs):
    name = f"hidden: the target's milestones and gamma on an optimizer with lr {lr}, {epochs} epochs"
    expected = [x * lr / TARGET_LR for x in TARGET + TARGET[-1:] * (epochs - len(TARGET))]
    with case(name), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = lr_curve(candidate, epochs, lr=lr)
    for t, (e, g) in enumerate(zip(expected, got)):
        if not math.isclose(e, g, rel_tol=1e-9):
            want, have = shown_pair(e, g)
            raise Mismatch(name, want, have, detail=f"the lr of epoch {t + 1} (after {t} scheduler steps)")


# --------------------------------------------------------------------------
# 06.4 — a one-cycle schedule, stepped per batch
# --------------------------------------------------------------------------


def train_one_cycle(model, batches, epochs, max_lr):
    """Train ``model`` with SGD and a OneCycleLR stepped after every batch; the lr of every step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=len(batches))
    lrs = []
    for _ in range(epochs):
        for x, y in batches:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    return lrs


def _one_cycle_variant(*, size=lambda E, B: {"epochs": E, "steps_per_epoch": B}, per_batch=True,
                       scheduler_first=False, log_after=False, zero_grad=True, fresh_each_epoch=False):
    """``train_one_cycle`` with one thing done wrongly."""

    def train(model, batches, epochs, max_lr):
        optimizer = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
        E, B = epochs, len(batches)
        make = functools.partial(lr_scheduler.OneCycleLR, optimizer, max_lr=max_lr)
        scheduler = make(**size(E, B))
        lrs = []
        for epoch in range(epochs):
            if fresh_each_epoch and epoch > 0:
                scheduler = make(**size(E, B))
            for x, y in batches:
                if zero_grad:
                    optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                if not log_after:
                    lrs.append(optimizer.param_groups[0]["lr"])
                if per_batch and scheduler_first:
                    scheduler.step()
                optimizer.step()
                if per_batch and not scheduler_first:
                    scheduler.step()
                if log_after:
                    lrs.append(optimizer.param_groups[0]["lr"])
            if not per_batch:
                scheduler.step()
        return lrs

    return train


ONE_CYCLE_MISTAKES = {
    "you step the scheduler once per epoch: OneCycleLR's schedule here counts batches "
    "(epochs × len(batches) steps); call scheduler.step() after every optimizer.step(), "
    "inside the batch loop":
        _one_cycle_variant(per_batch=False),
    "your OneCycleLR is sized in epochs (total_steps=epochs) and stepped once per epoch: the lr "
    "changes only between epochs; size it epochs × len(batches) and step it after every batch":
        _one_cycle_variant(size=lambda E, B: {"total_steps": E}, per_batch=False),
    "you build a new OneCycleLR every epoch, so each epoch runs a whole cycle: build it once, "
    "before the loops, for all epochs × len(batches) steps":
        _one_cycle_variant(size=lambda E, B: {"total_steps": B}, fresh_each_epoch=True),
    "your OneCycleLR has one step too many (total_steps = epochs × len(batches) + 1), so its "
    "cycle is stretched and never reaches its end: size it exactly epochs × len(batches)":
        _one_cycle_variant(size=lambda E, B: {"total_steps": E * B + 1}),
    "you call scheduler.step() before optimizer.step(): each batch trains with the next batch's lr "
    "(the first value of the schedule is skipped); step the optimizer first":
        _one_cycle_variant(scheduler_first=True),
    "you record the lr after scheduler.step(): that is the next batch's lr; record "
    "optimizer.param_groups[0]['lr'] before optimizer.step()":
        _one_cycle_variant(log_after=True),
    "the gradients accumulate from batch to batch: call optimizer.zero_grad() before each backward()":
        _one_cycle_variant(zero_grad=False),
}

ONE_CYCLE_CASES = (  # (name, epochs, batches, batch size, features, outputs, max_lr, seed)
    ("3 epochs of 4 batches, max_lr=0.05", 3, 4, 8, 3, 1, 0.05, 0),
    ("2 epochs of 5 batches, max_lr=0.2", 2, 5, 4, 2, 2, 0.2, 1),
    ("8 epochs of 20 batches (160 steps), max_lr=0.1", 8, 20, 4, 3, 1, 0.1, 2),
)
ONE_CYCLE_HIDDEN = (  # issue 15, grading: sizes and max_lrs the notebook never shows
    ("hidden: 5 epochs of 3 batches, max_lr=0.08", 5, 3, 6, 4, 2, 0.08, 5),
    ("hidden: 1 epoch of 11 batches, max_lr=0.3", 1, 11, 3, 2, 1, 0.3, 6),
)


def _one_cycle_task(B, n, features, outputs, seed):
    """A float64 linear model and ``B`` seeded mini-batches of a noisy linear target."""
    data = torch.Generator().manual_seed(seed)
    x = torch.randn(B * n, features, generator=data, dtype=torch.float64)
    y = x @ torch.randn(features, outputs, generator=data, dtype=torch.float64) + 0.1 * torch.randn(
        B * n, outputs, generator=data, dtype=torch.float64)
    torch.manual_seed(seed)
    model = torch.nn.Linear(features, outputs, dtype=torch.float64)
    return model, list(zip(x.split(n), y.split(n), strict=True))


@dataclass(frozen=True)
class _OneCycleRun:
    """What one run shows: the lr each optimizer step trained with, the returned lrs, the weights."""

    used: list
    returned: object
    weights: dict

    def same(self, other):
        same_weights = all(torch.allclose(w, other.weights[k], rtol=1e-10, atol=1e-12)
                           for k, w in self.weights.items())
        return (_same_lrs(self.used, other.used) and isinstance(other.returned, list)
                and all(_number(x) is not None for x in other.returned)
                and _same_lrs(self.returned, other.returned) and same_weights)


def _run_one_cycle(train, spec):
    _, epochs, B, n, features, outputs, max_lr, seed = spec
    model, batches = _one_cycle_task(B, n, features, outputs, seed)
    used = []
    hook = register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: used.append(
        optimizer.param_groups[0]["lr"]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's warning when scheduler.step() comes first
            returned = train(model, batches, epochs, max_lr)
    finally:
        hook.remove()
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if isinstance(returned, tuple):
        returned = list(returned)
    if isinstance(returned, list):
        returned = [_number(lr) if _number(lr) is not None else lr for lr in returned]
    return _OneCycleRun(used, returned, weights)


def _one_cycle_cause(runs):
    """The first mistake that reproduces every ``(spec, run)``, or None."""
    for why, wrong in ONE_CYCLE_MISTAKES.items():
        try:
            if all(_run_one_cycle(wrong, spec).same(run) for spec, run in runs):
                return why
        except Exception:  # noqa: BLE001, S112 (a mistake that crashes reproduces nothing)
            continue
    return None


@exercise("06.4", "A one-cycle schedule, stepped per batch", reference=train_one_cycle, hints=[
    "Build the OneCycleLR once, before the loops, for the whole run: epochs=epochs and "
    "steps_per_epoch=len(batches) (or total_steps=epochs * len(batches)).",
    "In the batch loop: zero_grad, loss, backward, record optimizer.param_groups[0]['lr'], "
    "optimizer.step(), then scheduler.step(). Nothing is stepped after the epoch.",
    "optimizer = optim.SGD(model.parameters(), lr=max_lr, momentum=0.9); "
    "scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs, "
    "steps_per_epoch=len(batches)); then for each epoch, for x, y in batches: optimizer.zero_grad(); "
    "F.mse_loss(model(x), y).backward(); lrs.append(optimizer.param_groups[0]['lr']); "
    "optimizer.step(); scheduler.step(). return lrs",
])
def check_one_cycle(candidate):
    _warm_up()
    passed = []
    for spec in ONE_CYCLE_HIDDEN if hidden_pass() else ONE_CYCLE_CASES:
        name, epochs, B = spec[:3]
        with untimed():
            expected = _run_one_cycle(train_one_cycle, spec)
        with case(name):
            got = _run_one_cycle(candidate, spec)
        _expect_one_cycle(name, epochs, B, expected, got, [(spec, got), *passed])
        passed.append((spec, got))
    return (f"{len(ONE_CYCLE_CASES)} runs (up to 160 steps): the lr every batch trains with, the lrs "
            "you return, and the trained weights match SGD with OneCycleLR stepped after every batch")


_USED = "the lr that optimizer step {k} trained with"
_LOGGED = "the lr your list gives for optimizer step {k}"


def _expect_one_cycle(name, epochs, B, expected, got, runs):
    """Raise ``Mismatch`` at the first difference: in the lrs used, the lrs returned, the weights."""
    steps = epochs * B
    if not isinstance(got.returned, list):
        raise Mismatch(name, f"a list of {steps} lrs", got.returned,
                       cause="return the list of lrs, one per optimizer step"
                             + (" (did you forget `return`?)" if got.returned is None else ""))
    for what, want, have in (("optimizer steps", expected.used, got.used),
                             ("lrs in your list", expected.returned, got.returned)):
        if len(have) != len(want):
            raise Mismatch(name, f"{len(want)} {what}", f"{len(have)} {what}",
                           cause=_one_cycle_cause(runs)
                           or f"one optimizer step and one lr per batch: {epochs} × {B} = {steps}")
    for what, want, have in ((_USED, expected.used, got.used), (_LOGGED, expected.returned, got.returned)):
        where = _differing_step(want, have)
        if where is not None:
            i, e, g = where
            e, g = shown_pair(e, g)
            raise Mismatch(name, e, g, step=i + 1,
                           detail=what.format(k=i + 1) + f" (epoch {i // B + 1}, batch {i % B + 1})",
                           cause=_one_cycle_cause(runs))
    for key, weight in expected.weights.items():
        mine = got.weights[key]
        if not torch.allclose(weight, mine, rtol=1e-10, atol=1e-12):
            raise Mismatch(name, _values(weight), _values(mine),
                           detail=f"the trained model's {key} after {steps} steps (largest difference "
                                  f"{(weight - mine).abs().max().item():.2g})",
                           cause=_one_cycle_cause(runs))


def _values(tensor):
    return "[" + ", ".join(f"{v:.6g}" for v in tensor.flatten().tolist()) + "]"


def _differing_step(expected, got):
    """(index, expected, got) of the first lr that differs, or None."""
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        if _number(g) is None or not math.isclose(e, g, rel_tol=1e-9, abs_tol=1e-15):
            return i, e, g
    return None
