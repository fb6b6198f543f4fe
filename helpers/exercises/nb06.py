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
from helpers.checking import Mismatch, case, exercise, untimed
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
    return math.isclose(expected, got, rel_tol=1e-3, abs_tol=1e-9)


@exercise("06.1", "Predict the learning rate", reference=predictions, hints=[
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


def _mistake(warmup, cosine, after=None):
    """A wrong factor function built from its phases; ``after`` None keeps the cosine going."""

    def factor(t, W, T, base, low):
        if t < W:
            return warmup(t, W)
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
}

WARMUP_CASES = (  # (name, W, T, base_lr, min_lr, steps run)
    ("W=5, T=20, base_lr=0.1, min_lr=0.001", 5, 20, 0.1, 0.001, 25),
    ("W=1, T=10, base_lr=2.0, min_lr=0.0", 1, 10, 2.0, 0.0, 12),
    ("no warmup: W=0, T=8, base_lr=0.5, min_lr=0.05", 0, 8, 0.5, 0.05, 10),
    ("W=10, T=100, base_lr=3e-4, min_lr=3e-5", 10, 100, 3e-4, 3e-5, 105),
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


@exercise("06.2", "Warmup + cosine with LambdaLR", reference=warmup_cosine, hints=[
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
    for name, W, T, base, low, steps in WARMUP_CASES:
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
                cause = next((why for why, wrong in WARMUP_MISTAKES.items()
                              if _same_lrs(_lambda_lrs(wrong, W, T, base, low, steps), got)), None)
                raise Mismatch(name, e, g, step=t,
                               detail=f"the lr of step {t} ({_phase(t, W, T)} phase)", cause=cause)
    return (f"{len(WARMUP_CASES)} settings (with and without warmup, past total_steps): "
            "LambdaLR with your factor gives the lr of WarmupStableDecay at every step")


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
    "return lr_scheduler.MultiStepLR(optimizer, milestones=[20, 50, 70], gamma=0.25)",
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
            raise Mismatch(name, e, g, detail=f"the lr of epoch {t + 1} (after {t} scheduler steps)",
                           cause=_curve_cause(TARGET, got))
    return f"MultiStepLR gives the target lr in all {len(TARGET)} epochs"
