"""Notebook 07, your own scheduler: the base class, StepLR, warmup + cosine, WSD.

Every checker runs the learner's scheduler next to a reference built from
torch's own schedulers (``torch.optim.lr_scheduler``), or next to
``helpers.lr_scheduler.WarmupStableDecay`` for WSD, on optimizers with two
param groups of different lrs, and compares the lr of every group at every
step (``_compare``), also with the lr changed by hand between steps, over long
runs, and across a resume from ``state_dict()``. On the first difference it
replays the typical wrong versions below to name the mistake; the tests feed
them back in.
"""

import functools
import math
import warnings

import torch
from torch.optim import lr_scheduler as S

from helpers import lr_scheduler as ours
from helpers.checking import Mismatch, case, exercise, hidden_pass, untimed
from helpers.checking_tools import SchedulerCase, format_lrs, lr_kind_cause, shown_pair
from helpers.lr_scheduler import LRScheduler, StepLR, WarmupStableDecay, lr_curve

# --------------------------------------------------------------------------
# 07.1 — the base class
# --------------------------------------------------------------------------


@functools.cache
def _warm_up():
    """torch's first optimizer.step() imports a lot (seconds on a busy machine): not the candidate's time."""
    with untimed():
        lr_curve(lambda o: S.StepLR(o, step_size=1), 2)


def _same(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _probes(base):
    """Two tiny schedulers on ``base``: one closed form, one recursive."""

    class Harmonic(base):
        """Closed form: lr_t = lr_0 / (t + 3), like LambdaLR(lambda t: 1 / (t + 3))."""

        def get_lr(self):
            return [lr_0 / (self.last_epoch + 3) for lr_0 in self.base_lrs]

    class Halving(base):
        """Recursive: lr_t = lr_{t−1} / 2 for t > 0, like ExponentialLR(gamma=0.5)."""

        def get_lr(self):
            factor = 1.0 if self.last_epoch == 0 else 0.5
            return [group["lr"] * factor for group in self.optimizer.param_groups]

    return Harmonic, Halving


def _harmonic(optimizer, last_epoch=-1):
    return S.LambdaLR(optimizer, lambda t: 1 / (t + 3), last_epoch=last_epoch)


def _optimizer(lrs=(0.1, 0.02), resumed=False):
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
    if resumed:  # what optimizer.load_state_dict brings back
        for group in groups:
            group["initial_lr"] = group["lr"]
    return torch.optim.SGD(groups)


def _lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


def _at(what, epoch):
    """``what`` at scheduler step ``epoch``, told in optimizer steps too (step 1 is the first update)."""
    if epoch is None:
        return what
    return f"{what} at last_epoch {epoch} (the lrs that optimizer step {epoch + 1} trains with)"


def _expect_lrs(name, expected, got, *, step=None, cause=None, what="the groups' lrs"):
    if not all(_is_number(g) for g in got):
        odd = next(g for g in got if not _is_number(g))
        raise Mismatch(name, format_lrs(expected), got, detail=_at(what, step), cause=lr_kind_cause(odd))
    if len(expected) != len(got) or not all(_same(e, g) for e, g in zip(expected, got)):
        raise Mismatch(name, format_lrs(expected), format_lrs(got), detail=_at(what, step), cause=cause)


_LATE = ("your lrs are one step late (the constructor's step computed step −1): step() must add 1 "
         "to last_epoch *before* it asks get_lr() for the lrs of the new step")


def _run_steps(name, scheduler, reference, optimizers, steps):
    """Step the candidate's scheduler and torch's side by side; compare lrs, last_epoch, _last_lr."""
    mine, theirs = optimizers
    for t in range(1, steps + 1):
        before = _lrs(theirs)
        mine.step()
        theirs.step()
        with case(name):
            scheduler.step()
        reference.step()
        late = all(_is_number(g) and _same(b, g) for b, g in zip(before, _lrs(mine)))
        _expect_lrs(name, _lrs(theirs), _lrs(mine), step=t, cause=_LATE if late else None)
        if getattr(scheduler, "last_epoch", None) != t:
            raise Mismatch(name, t, getattr(scheduler, "last_epoch", None),
                           detail=f"last_epoch after {t} calls of scheduler.step()",
                           cause="each step() adds exactly 1 to self.last_epoch")
        _expect_last_lr(name, scheduler, mine, step=t)


def _expect_last_lr(name, scheduler, optimizer, step=None):
    last = getattr(scheduler, "_last_lr", None)
    if not isinstance(last, list) or len(last) != len(optimizer.param_groups) or not all(
        _is_number(x) and _same(x, lr) for x, lr in zip(last, _lrs(optimizer))
    ):
        raise Mismatch(name, format_lrs(_lrs(optimizer)), last,
                       detail=_at("self._last_lr (what get_last_lr() returns)", step),
                       cause="after writing the new lrs, step() must store them as a new list in "
                             "self._last_lr = [group['lr'] for group in …param_groups]")


def _start(name, scheduler, optimizer, lrs):
    """The state right after the constructor: step 0 taken, initial_lr stored, base_lrs."""
    epoch = getattr(scheduler, "last_epoch", None)
    if epoch == -1:
        raise Mismatch(name, 0, -1, detail="last_epoch right after the constructor",
                       cause="the constructor must end with the first step (self.step()): it moves "
                             "last_epoch from -1 to 0 and writes the lr of step 0")
    if epoch != 0:
        raise Mismatch(name, 0, epoch, detail="last_epoch right after the constructor",
                       cause="store last_epoch (−1 for a new run), then take exactly one step")
    for i, group in enumerate(optimizer.param_groups):
        if "initial_lr" not in group:
            raise Mismatch(name, lrs[i], "no 'initial_lr' key", detail=f"param_groups[{i}]['initial_lr']",
                           cause="the constructor must store each group's starting lr as "
                                 "group['initial_lr'] (a checkpoint of the optimizer carries it)")
    _expect_lrs(name, list(lrs), [g["initial_lr"] for g in optimizer.param_groups],
                what="each group's 'initial_lr'",
                cause="an earlier scheduler on this optimizer had already stored initial_lr: keep it "
                      "(group.setdefault('initial_lr', group['lr'])), do not overwrite it")
    base = getattr(scheduler, "base_lrs", None)
    if not isinstance(base, list):
        raise Mismatch(name, format_lrs(lrs), base, detail="self.base_lrs",
                       cause="self.base_lrs must be a list: each group's initial_lr")
    _expect_lrs(name, list(lrs), base, what="self.base_lrs",
                cause="base_lrs are the groups' initial_lr, not their current lr (which an "
                      "earlier scheduler may already have changed)")


@exercise("07.1", "The scheduler base class", reference=LRScheduler, library=[S.LRScheduler], hints=[
    "The constructor: for every group, group.setdefault('initial_lr', group['lr']) when "
    "last_epoch == -1, and raise KeyError when resuming (last_epoch ≥ 0) without it. Then "
    "self.base_lrs from those initial lrs, self.last_epoch = last_epoch, and one self.step().",
    "step(): first self.last_epoch += 1, then ask self.get_lr() for the new lrs, write each "
    "into its group's 'lr', and keep a copy in self._last_lr.",
    "step(): self.last_epoch += 1; for group, lr in zip(self.optimizer.param_groups, "
    "self.get_lr()): group['lr'] = lr; then self._last_lr = [group['lr'] for group in "
    "self.optimizer.param_groups].",
])
def check_base(candidate):
    if not isinstance(candidate, type):
        raise Mismatch("your base class", expected="a class, to subclass", got=type(candidate).__name__,
                       cause='pass the class itself: check("07.1", MyLRScheduler)')
    _warm_up()
    Harmonic, Halving = _probes(candidate)
    if hidden_pass():  # issue 15, grading: three groups of other lrs, a resume at another step
        _expect_base_on_other_groups(Harmonic, (0.3, 0.05, 0.7))
        return None

    name = "a closed-form subclass (lr_0 / (t + 3)) on SGD with 2 groups, lrs [0.1, 0.02], 150 steps"
    mine, theirs = _optimizer(), _optimizer()
    with case(name):
        scheduler = Harmonic(mine)
    reference = _harmonic(theirs)
    _start(name, scheduler, mine, [0.1, 0.02])
    step_minus_1 = [lr / 2 for lr in (0.1, 0.02)]  # lr_0 / (t + 3) at t = −1
    late = all(_is_number(g) and _same(g, e) for g, e in zip(_lrs(mine), step_minus_1))
    unwritten = "the constructor's step must write get_lr() of step 0 into group['lr']"
    _expect_lrs(name, _lrs(theirs), _lrs(mine), step=0, what="the groups' lrs after the constructor",
                cause=_LATE if late else unwritten)
    _expect_last_lr(name, scheduler, mine, step=0)
    _run_steps(name, scheduler, reference, (mine, theirs), 150)

    name = ("a recursive subclass (lr / 2 per step) built after torch's "
            "LinearLR(start_factor=0.25, total_iters=4), both stepped")
    mine, theirs = _optimizer(), _optimizer()
    first_mine = S.LinearLR(mine, start_factor=0.25, total_iters=4)
    first_theirs = S.LinearLR(theirs, start_factor=0.25, total_iters=4)
    with case(name):
        scheduler = Halving(mine)
    reference = S.ExponentialLR(theirs, gamma=0.5)
    _start(name, scheduler, mine, [0.1, 0.02])
    _expect_lrs(name, _lrs(theirs), _lrs(mine), step=0, what="the groups' lrs after the constructor")
    chained = S.ChainedScheduler([first_mine, scheduler]), S.ChainedScheduler([first_theirs, reference])
    for t in range(1, 7):
        mine.step()
        theirs.step()
        with case(name):
            chained[0].step()
        chained[1].step()
        _expect_lrs(name, _lrs(theirs), _lrs(mine), step=t)
        _expect_last_lr(name, scheduler, mine, step=t)

    name = "resume: 4 steps, state_dicts saved, loaded into a new optimizer and scheduler, 5 more"
    mine = _optimizer()
    with case(name):
        scheduler = Harmonic(mine)
        for _ in range(4):
            mine.step()
            scheduler.step()
        saved = mine.state_dict(), scheduler.state_dict()
        mine = _optimizer(lrs=(0.7, 0.7))
        scheduler = Harmonic(mine)
        mine.load_state_dict(saved[0])
        scheduler.load_state_dict(saved[1])
    theirs = _optimizer()
    reference = _harmonic(theirs)
    for _ in range(4):
        theirs.step()
        reference.step()
    for t in range(5, 10):
        mine.step()
        theirs.step()
        with case(name):
            scheduler.step()
        reference.step()
        _expect_lrs(name, _lrs(theirs), _lrs(mine), step=t, cause=(
            "the resumed schedule differs: keep all of the scheduler's state in attributes "
            "(state_dict() saves self.__dict__), and compute from self.last_epoch and self.base_lrs"))

    name = "resume with last_epoch=3 on an optimizer whose groups have no 'initial_lr'"
    raised = False
    with case(name):
        try:
            Harmonic(_optimizer(), last_epoch=3)
        except KeyError:
            raised = True
    if not raised:
        raise Mismatch(name, "KeyError", "no error",
                       cause="when resuming (last_epoch ≥ 0) each group must already hold initial_lr "
                             "(from optimizer.load_state_dict); raise KeyError like torch, instead of "
                             "silently starting the schedule from the current lr")

    name = "resume with last_epoch=3 on an optimizer that holds 'initial_lr' (lrs [0.1, 0.02])"
    mine, theirs = _optimizer(resumed=True), _optimizer(resumed=True)
    with case(name):
        scheduler = Harmonic(mine, last_epoch=3)
    _harmonic(theirs, last_epoch=3)
    if getattr(scheduler, "last_epoch", None) != 4:
        raise Mismatch(name, 4, getattr(scheduler, "last_epoch", None),
                       detail="last_epoch after the constructor",
                       cause="the constructor starts from the given last_epoch and takes one step")
    _expect_lrs(name, _lrs(theirs), _lrs(mine), step=4)
    return ("step 0 in the constructor, initial_lr kept, base_lrs; a closed-form subclass against "
            "LambdaLR for 150 steps (lrs, last_epoch, _last_lr); a recursive subclass chained after "
            "LinearLR against ExponentialLR; resume from state_dict(); KeyError without initial_lr; "
            "resume from last_epoch")


def _expect_base_on_other_groups(Harmonic, lrs):
    name = f"hidden: the closed-form subclass on SGD with {len(lrs)} groups, lrs {list(lrs)}, 40 steps"
    mine, theirs = _optimizer(lrs), _optimizer(lrs)
    with case(name):
        scheduler = Harmonic(mine)
    reference = _harmonic(theirs)
    _start(name, scheduler, mine, lrs)
    _expect_lrs(name, _lrs(theirs), _lrs(mine), step=0, what="the groups' lrs after the constructor")
    _run_steps(name, scheduler, reference, (mine, theirs), 40)
    name = f"hidden: resume with last_epoch=6 on {len(lrs)} groups that hold 'initial_lr'"
    mine, theirs = _optimizer(lrs, resumed=True), _optimizer(lrs, resumed=True)
    with case(name):
        Harmonic(mine, last_epoch=6)
    _harmonic(theirs, last_epoch=6)
    _expect_lrs(name, _lrs(theirs), _lrs(mine), step=7)


# --------------------------------------------------------------------------
# 07.2–07.4: candidate and reference stepped side by side, with events
# --------------------------------------------------------------------------


class Run(SchedulerCase):
    """A :class:`SchedulerCase` with what can happen to a real run.

    ``nudge``: optimizer steps (from 1) after which every group's lr is multiplied
    by 0.5 by hand, before ``scheduler.step()``; ``resume_at``: after this many
    steps both state dicts are saved and loaded into a new optimizer and a new
    scheduler; ``rebuild_at``: after this many steps the optimizer's state dict is
    loaded into a new optimizer and the scheduler rebuilt with ``last_epoch``.
    ``expected``: builds the expected lrs instead of the exercise's reference.
    """

    def __init__(self, name, *, nudge=(), resume_at=None, rebuild_at=None, expected=None, **kwargs):
        super().__init__(name, **kwargs)
        self.nudge, self.resume_at, self.rebuild_at = set(nudge), resume_at, rebuild_at
        self.expected = expected

    @property
    def label(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name}: {args}, {self.optimizer} with group lrs {list(self.lrs)}"


def _new_optimizer(run, lrs=None):
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs or run.lrs]
    return getattr(torch.optim, run.optimizer)(groups)


def _table(make, run, steps=None):
    """[[lr of each group] before each optimizer step] under ``make(optimizer, **kwargs)`` and
    the events of ``run``."""
    optimizer = _new_optimizer(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's warnings about the order of the steps
        scheduler = make(optimizer, **run.kwargs)
        if run.chain is not None:
            scheduler = S.ChainedScheduler([scheduler, run.chain(optimizer)])
        rows = []
        for t in range(run.steps if steps is None else steps):
            if t == run.resume_at:  # a new process: other lrs until the state dicts are loaded
                saved = optimizer.state_dict(), scheduler.state_dict()
                optimizer = _new_optimizer(run, lrs=[0.7] * len(run.lrs))
                scheduler = make(optimizer, **run.kwargs)
                optimizer.load_state_dict(saved[0])
                scheduler.load_state_dict(saved[1])
            if t == run.rebuild_at:  # the optimizer's state, and the scheduler rebuilt from the step count
                saved = optimizer.state_dict()
                optimizer = _new_optimizer(run, lrs=[0.7] * len(run.lrs))
                optimizer.load_state_dict(saved)
                scheduler = make(optimizer, last_epoch=t - 1, **run.kwargs)
            rows.append([group["lr"] for group in optimizer.param_groups])
            optimizer.step()
            if t + 1 in run.nudge:
                for group in optimizer.param_groups:
                    group["lr"] *= 0.5
            scheduler.step()
    return rows


def _same_lr(a, b):
    return _is_number(a) and _is_number(b) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


def _first_difference(expected, got):
    """(step index, group) of the first lr that differs, or None."""
    for t, (want, have) in enumerate(zip(expected, got, strict=True)):
        if len(want) != len(have):
            return t, min(len(want), len(have))
        for g, (e, h) in enumerate(zip(want, have)):
            if not _same_lr(e, h):
                return t, g
    return None


def _compare(candidate, reference, runs, mistakes):
    """Step the candidate and the reference on every run; raise ``Mismatch`` at the first lr that
    differs, with the first mistake that replays the candidate's lrs there and in every run
    before. Returns what was verified."""
    passed = []
    for run in runs:
        with untimed():  # the reference's time (and torch's first-step imports) is not the candidate's
            expected = _table(run.expected or reference, run)
        with case(run.label):
            got = _table(candidate, run)
        where = _first_difference(expected, got)
        if where is None:
            passed.append((run, expected))
            continue
        t, g = where
        value = got[t][g] if g < len(got[t]) else "no lr"
        if _is_number(value):
            cause = _replayed(mistakes, [(run, got), *passed])
        else:
            cause = lr_kind_cause(value) if g < len(got[t]) else "get_lr() must return one lr per param group"
        want, have = shown_pair(expected[t][g], value)
        raise Mismatch(
            run.label, want, have, step=t + 1,
            detail=f"the lr of param group {g} (of {len(run.lrs)}) that optimizer step {t + 1} trains with "
                   f"(last_epoch {t}); all groups: expected {format_lrs(expected[t])}, "
                   f"got {format_lrs(got[t])}",
            cause=cause,
        )
    return "; ".join(run.name for run in runs)


def _replayed(mistakes, runs):
    """The first mistake that gives the lrs of every ``(run, rows)``, or None."""
    for description, wrong in mistakes.items():
        try:
            if all(_first_difference(_table(wrong, run, len(rows)), rows) is None for run, rows in runs):
                return description
        except Exception:  # noqa: BLE001, S112 (a mistake that crashes reproduces nothing)
            continue
    return None


# --------------------------------------------------------------------------
# 07.2 — StepLR, recursive
# --------------------------------------------------------------------------


class _StepLR(LRScheduler):
    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)


def _recursive(decays):
    """A StepLR that multiplies the current lr by gamma at the steps where ``decays(t, step_size)``."""

    class Wrong(_StepLR):
        def get_lr(self):
            factor = self.gamma if decays(self.last_epoch, self.step_size) else 1.0
            return [group["lr"] * factor for group in self.optimizer.param_groups]

    return Wrong


class _ClosedFormStepLR(_StepLR):
    def get_lr(self):
        return [lr_0 * self.gamma ** (self.last_epoch // self.step_size) for lr_0 in self.base_lrs]


class _CompoundingStepLR(_StepLR):
    def get_lr(self):
        n = self.last_epoch // self.step_size
        return [group["lr"] * self.gamma**n for group in self.optimizer.param_groups]


class _FirstGroupStepLR(_StepLR):
    def get_lr(self):
        lr = self.optimizer.param_groups[0]["lr"]
        decay = self.last_epoch > 0 and self.last_epoch % self.step_size == 0
        return [lr * self.gamma if decay else lr for _ in self.optimizer.param_groups]


STEP_MISTAKES = {
    "you also decay at step 0: 0 % step_size == 0, but the schedule starts at the full lr; "
    "decay only when last_epoch > 0 and last_epoch % step_size == 0":
        _recursive(lambda t, s: t % s == 0),
    "your drops come one step early: the lr of step t is lr_0·gamma^⌊t/step_size⌋, so the first "
    "drop is at last_epoch == step_size, not step_size − 1":
        _recursive(lambda t, s: (t + 1) % s == 0),
    "your drops come one step late: the first drop is at last_epoch == step_size":
        _recursive(lambda t, s: t > 1 and (t - 1) % s == 0),
    "you multiply the *current* lr by gamma^⌊t/step_size⌋, a closed-form factor, so the drops "
    "compound; the recursive form multiplies by gamma only at a drop":
        _CompoundingStepLR,
    "every group got group 0's lr: compute each group's new lr from its own group['lr']":
        _FirstGroupStepLR,
    "your StepLR does not start from the lr it finds in each group (it computes from base_lrs, or "
    "from lrs it keeps itself), so it overwrites what another scheduler in a ChainedScheduler, or "
    "a change by hand, did to the lr; multiply the current group['lr'] by gamma at a drop, as torch does":
        _ClosedFormStepLR,
}

_exp = functools.partial(S.ExponentialLR, gamma=0.9)
STEP_CASES = (
    Run("halve every 3 steps, SGD", step_size=3, gamma=0.5, steps=14),
    Run("default gamma, Adam", step_size=4, lrs=(1.0, 0.3), optimizer="Adam", steps=14),
    Run("a drop every step", step_size=1, gamma=0.8, lrs=(0.5, 0.05), steps=6),
    Run("chained with ExponentialLR(gamma=0.9)", step_size=3, gamma=0.5, steps=10, chain=_exp),
    Run("the lr halved by hand after steps 2 and 7", step_size=3, gamma=0.5, steps=12, nudge=(2, 7)),
    Run("165 steps, 3 groups", step_size=40, gamma=0.5, lrs=(0.1, 0.02, 0.005), steps=165),
    Run("resumed from state_dict()s after 8 steps", step_size=3, gamma=0.5, steps=16, resume_at=8),
)
STEP_HIDDEN = (  # issue 15, grading: settings the notebook never shows
    Run("hidden: every 5 steps, 3 groups", step_size=5, gamma=0.3, lrs=(0.2, 0.07, 0.01), steps=23),
    Run("hidden: resumed after 11 steps, Adam", step_size=2, gamma=0.7, lrs=(0.4, 0.04), optimizer="Adam",
        steps=19, resume_at=11),
)


@exercise("07.2", "StepLR, the recursive way", reference=StepLR, library=[S.StepLR], hints=[
    "get_lr() returns one lr per group, computed from the group's current lr: most steps leave "
    "it as it is; at a drop it is multiplied by self.gamma.",
    "A drop happens when self.last_epoch > 0 and self.last_epoch % self.step_size == 0. Step 0 "
    "(the constructor's step) never drops.",
    "drop = self.last_epoch > 0 and self.last_epoch % self.step_size == 0; return "
    "[group['lr'] * self.gamma if drop else group['lr'] for group in self.optimizer.param_groups]",
])
def check_step_lr(candidate):
    verified = _compare(candidate, S.StepLR, STEP_HIDDEN if hidden_pass() else STEP_CASES, STEP_MISTAKES)
    return f"every param group's lr at every step against torch's StepLR: {verified}"


# --------------------------------------------------------------------------
# 07.3 — linear warmup + cosine decay, closed form
# --------------------------------------------------------------------------


class WarmupCosine(LRScheduler):
    """Linear warmup to lr_0, half a cosine down to eta_min, then eta_min (nanoGPT's schedule).

    With W = warmup_steps, T = total_steps:

        lr_t = lr_0 · (t + 1) / (W + 1)                                   for t < W
        lr_t = eta_min + (lr_0 − eta_min) · (1 + cos(π (t − W) / (T − W))) / 2   for W ≤ t ≤ T
        lr_t = eta_min                                                    for t > T
    """

    def __init__(self, optimizer, warmup_steps, total_steps, eta_min=0.0, last_epoch=-1):
        self.warmup_steps, self.total_steps, self.eta_min = warmup_steps, total_steps, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, W, T, eta_min = self.last_epoch, self.warmup_steps, self.total_steps, self.eta_min
        if t < W:
            return [lr_0 * (t + 1) / (W + 1) for lr_0 in self.base_lrs]
        if t > T:
            return [eta_min for _ in self.base_lrs]
        cosine = (1 + math.cos(math.pi * (t - W) / (T - W))) / 2
        return [eta_min + (lr_0 - eta_min) * cosine for lr_0 in self.base_lrs]


def warmup_cosine_torch(optimizer, warmup_steps, total_steps, eta_min=0.0):
    """The same schedule from torch's parts: LinearLR, then CosineAnnealingLR, then a constant."""
    W, T = warmup_steps, total_steps
    hold = S.LambdaLR(optimizer, [lambda t, r=eta_min / g["lr"]: r for g in optimizer.param_groups])
    cosine = S.CosineAnnealingLR(optimizer, T_max=T - W, eta_min=eta_min)
    if W == 0:
        return S.SequentialLR(optimizer, [cosine, hold], milestones=[T + 1])
    warmup = S.LinearLR(optimizer, start_factor=1 / (W + 1), end_factor=1.0, total_iters=W)
    return S.SequentialLR(optimizer, [warmup, cosine, hold], milestones=[W, T + 1])


def _cosine_variant(warmup=lambda t, W: (t + 1) / (W + 1), progress=lambda t, W, T: (t - W) / (T - W),
                    hold=True, floor=lambda eta_min, lr_0: eta_min):
    """A WarmupCosine with one part written wrongly."""

    class Wrong(WarmupCosine):
        def get_lr(self):
            t, W, T = self.last_epoch, self.warmup_steps, self.total_steps
            lrs = []
            for lr_0 in self.base_lrs:
                low = floor(self.eta_min, lr_0)
                if t < W:
                    lrs.append(lr_0 * warmup(t, W))
                elif hold and t > T:
                    lrs.append(low)
                else:
                    lrs.append(low + (lr_0 - low) * (1 + math.cos(math.pi * progress(t, W, T))) / 2)
            return lrs

    return Wrong


class _CompoundingCosine(WarmupCosine):
    def get_lr(self):
        right = WarmupCosine.get_lr(self)
        return [g["lr"] * lr / lr_0 for g, lr, lr_0 in zip(self.optimizer.param_groups, right, self.base_lrs)]


class _OneBaseCosine(WarmupCosine):
    def get_lr(self):
        right = WarmupCosine.get_lr(self)
        return [right[0]] * len(right)


COSINE_MISTAKES = {
    "your warmup starts at 0 (lr_0·t/W): here it starts at lr_0/(W + 1), so that the first "
    "step already trains, and climbs by lr_0/(W + 1) per step: lr_0·(t + 1)/(W + 1)":
        _cosine_variant(warmup=lambda t, W: t / W),
    "your warmup reaches the full lr one step early (lr_0·(t + 1)/W): it should climb "
    "lr_0·(t + 1)/(W + 1) and reach lr_0 at step W, where the cosine starts":
        _cosine_variant(warmup=lambda t, W: (t + 1) / W),
    "you multiply the *current* lr by the closed-form factor, so the factors compound step after "
    "step; a closed form computes from self.base_lrs and self.last_epoch only":
        _CompoundingCosine,
    "every group follows group 0: compute each group's lr from its own base lr "
    "(for lr_0 in self.base_lrs)":
        _OneBaseCosine,
    "your cosine runs from step 0 over all total_steps; it starts after the warmup: "
    "progress (t − W)/(T − W)":
        _cosine_variant(progress=lambda t, W, T: t / T),
    "your cosine's progress is (t − W)/T: it starts at the end of the warmup but spreads over "
    "total_steps, so it is still above eta_min at step T; the cosine lasts T − W steps: (t − W)/(T − W)":
        _cosine_variant(progress=lambda t, W, T: (t - W) / T),
    "after total_steps your cosine climbs back up: hold eta_min for t > total_steps":
        _cosine_variant(hold=False),
    "eta_min is a learning rate, like torch's CosineAnnealingLR's: the floor is eta_min "
    "itself, not eta_min·lr_0":
        _cosine_variant(floor=lambda eta_min, lr_0: eta_min * lr_0),
}

_COSINE = {"warmup_steps": 5, "total_steps": 20, "eta_min": 0.001}
COSINE_CASES = (
    Run("warmup, cosine, floor", **_COSINE, steps=26),
    Run("no warmup", warmup_steps=0, total_steps=10, lrs=(0.5, 0.05), steps=14),
    Run("one warmup step, Adam", warmup_steps=1, total_steps=8, eta_min=0.01, lrs=(1.0, 0.2),
        optimizer="Adam", steps=12),
    Run("160 steps, 3 groups", warmup_steps=10, total_steps=150, eta_min=1e-4, lrs=(3e-3, 1e-3, 5e-4),
        steps=160),
    Run("the lr halved by hand after steps 3, 10 and 22 (a closed form overwrites it)", **_COSINE,
        steps=26, nudge=(3, 10, 22), expected=WarmupCosine),
    Run("resumed from state_dict()s after 9 steps", **_COSINE, steps=24, resume_at=9, expected=WarmupCosine),
    Run("rebuilt with last_epoch after 12 steps", **_COSINE, steps=24, rebuild_at=12, expected=WarmupCosine),
)
COSINE_HIDDEN = (  # issue 15, grading: settings the notebook never shows
    Run("hidden: 3 groups", warmup_steps=4, total_steps=17, eta_min=0.002, lrs=(0.3, 0.04, 0.009), steps=21),
    Run("hidden: resumed after 7 steps, Adam", warmup_steps=6, total_steps=13, lrs=(0.05, 0.5),
        optimizer="Adam", steps=16, resume_at=7, expected=WarmupCosine),
)


@exercise("07.3", "Linear warmup + cosine decay, closed form", reference=WarmupCosine,
          library=[warmup_cosine_torch, S.CosineAnnealingLR, ours.CosineAnnealingLR, S.LinearLR,
                   ours.LinearLR, S.SequentialLR, ours.SequentialLR], hints=[
    "A closed form needs only self.last_epoch (t) and self.base_lrs: return one lr per base lr. "
    "Three phases: t < warmup_steps, up to total_steps, after.",
    "Warmup: lr_0·(t + 1)/(W + 1). Cosine: p = (t − W)/(T − W) and eta_min + (lr_0 − eta_min)·"
    "(1 + math.cos(math.pi·p))/2. After T: eta_min.",
    "t, W, T = self.last_epoch, self.warmup_steps, self.total_steps; if t < W: return "
    "[lr_0 * (t + 1) / (W + 1) for lr_0 in self.base_lrs]; if t > T: return [self.eta_min "
    "for _ in self.base_lrs]; otherwise the cosine formula for each lr_0.",
])
def check_warmup_cosine(candidate):
    runs = COSINE_HIDDEN if hidden_pass() else COSINE_CASES
    verified = _compare(candidate, warmup_cosine_torch, runs, COSINE_MISTAKES)
    return ("every param group's lr at every step against torch's LinearLR → CosineAnnealingLR (its "
            f"closed form where the lr is changed by hand or resumed): {verified}")


# --------------------------------------------------------------------------
# 07.4 — warmup-stable-decay
# --------------------------------------------------------------------------


_DECAYS = {
    "linear": lambda p: 1 - p,
    "cosine": lambda p: (1 + math.cos(math.pi * p)) / 2,
    "1-sqrt": lambda p: 1 - math.sqrt(max(p, 0.0)),
}


def _wsd_variant(warmup=lambda t, W: t / W, decay_offset=0, hold=True, floor=lambda r, lr_0: r * lr_0,
                 shape=lambda name: name):
    """A WarmupStableDecay with one phase written wrongly."""

    class Wrong(WarmupStableDecay):
        def get_lr(self):
            t, W, D = self.last_epoch, self.warmup_steps, self.decay_steps
            start = W + self.stable_steps
            lrs = []
            for lr_0 in self.base_lrs:
                low = floor(self.min_lr_ratio, lr_0)
                if t < W:
                    lrs.append(lr_0 * warmup(t, W))
                elif t < start:
                    lrs.append(lr_0)
                elif t < start + D or not hold:
                    g = _DECAYS[shape(self.decay)]((t - start + decay_offset) / D)
                    lrs.append(low + (lr_0 - low) * g)
                else:
                    lrs.append(low)
            return lrs

    return Wrong


class _CompoundingWSD(WarmupStableDecay):
    def get_lr(self):
        return [g["lr"] * self.factor(self.last_epoch) for g in self.optimizer.param_groups]


class _OneBaseWSD(WarmupStableDecay):
    def get_lr(self):
        return [self.base_lrs[0] * self.factor(self.last_epoch) for _ in self.base_lrs]


class _FactorAsLrWSD(WarmupStableDecay):
    def get_lr(self):
        return [self.factor(self.last_epoch) for _ in self.base_lrs]


class _StableKeepsLrWSD(WarmupStableDecay):
    def get_lr(self):
        t, start = self.last_epoch, self.warmup_steps + self.stable_steps
        if self.warmup_steps <= t < start:
            return [g["lr"] for g in self.optimizer.param_groups]
        return super().get_lr()


WSD_MISTAKES = {
    "your warmup starts at lr_0/(W + 1), as in 07.3; WSD's starts at 0: lr_0·t/W":
        _wsd_variant(warmup=lambda t, W: (t + 1) / (W + 1)),
    "your warmup reaches the full lr one step early (lr_0·(t + 1)/W); WSD's is lr_0·t/W, "
    "from 0 at step 0 to lr_0 at step W":
        _wsd_variant(warmup=lambda t, W: (t + 1) / W),
    "your decay starts one step early: at step W + S the progress is 0 (the full lr), "
    "p = (t − W − S)/D":
        _wsd_variant(decay_offset=1),
    "after the decay, hold the floor min_lr_ratio·lr_0 (t ≥ W + S + D); your decay keeps going":
        _wsd_variant(hold=False),
    "min_lr_ratio is a fraction of each group's lr: the floor is min_lr_ratio·lr_0, "
    "not min_lr_ratio itself":
        _wsd_variant(floor=lambda r, lr_0: r),
    "your decay is always linear: use the shape that self.decay names, DECAYS[self.decay](p)":
        _wsd_variant(shape=lambda name: "linear"),
    "get_lr() returns the factor lr_t/lr_0 itself: multiply it by each group's base lr, "
    "[lr_0 * factor for lr_0 in self.base_lrs]":
        _FactorAsLrWSD,
    "you multiply the *current* lr by the closed-form factor, so the factors compound; "
    "compute from self.base_lrs and self.last_epoch only":
        _CompoundingWSD,
    "every group follows group 0: compute each group's lr from its own base lr "
    "(for lr_0 in self.base_lrs)":
        _OneBaseWSD,
    "in the stable phase you keep the current group['lr']: a closed form writes lr_0 there too "
    "(from self.base_lrs), whatever happened to the lr before":
        _StableKeepsLrWSD,
}

_WSD = {"warmup_steps": 3, "stable_steps": 5, "decay_steps": 4, "min_lr_ratio": 0.1}
WSD_CASES = (
    Run("linear decay (the default)", **_WSD, steps=16),
    Run("cosine decay, no warmup", warmup_steps=0, stable_steps=2, decay_steps=5,
        decay="cosine", lrs=(1.0, 0.25), steps=10),
    Run("1-sqrt decay, no stable phase, Adam", warmup_steps=2, stable_steps=0, decay_steps=6,
        min_lr_ratio=0.2, decay="1-sqrt", lrs=(0.3, 0.01), optimizer="Adam", steps=12),
    Run("170 steps, cosine, 3 groups", warmup_steps=20, stable_steps=100, decay_steps=40, min_lr_ratio=0.05,
        decay="cosine", lrs=(0.1, 0.03, 0.01), steps=170),
    Run("the lr halved by hand after steps 2, 5, 10 and 14 (a closed form overwrites it)", **_WSD,
        steps=16, nudge=(2, 5, 10, 14), expected=WarmupStableDecay),
    Run("resumed from state_dict()s after 6 steps", **_WSD, decay="1-sqrt", steps=16, resume_at=6),
    Run("rebuilt with last_epoch after 9 steps", **_WSD, steps=16, rebuild_at=9),
)
WSD_HIDDEN = (  # issue 15, grading: settings the notebook never shows
    Run("hidden: 1-sqrt, 3 groups", warmup_steps=4, stable_steps=3, decay_steps=7, min_lr_ratio=0.3,
        decay="1-sqrt", lrs=(0.2, 0.06, 0.5), steps=18),
    Run("hidden: cosine, rebuilt with last_epoch after 10 steps, Adam", warmup_steps=5, stable_steps=4,
        decay_steps=3, min_lr_ratio=0.01, decay="cosine", lrs=(0.03, 0.3), optimizer="Adam", steps=15,
        rebuild_at=10),
)


@exercise("07.4", "Warmup-stable-decay", reference=WarmupStableDecay, hints=[
    "Write factor(t) = lr_t/lr_0 with four phases (warmup, stable, decay, floor); get_lr() "
    "multiplies each base lr by factor(self.last_epoch).",
    "Warmup: t/W. Stable: 1. Decay: with p = (t − W − S)/D, r + (1 − r)·g(p), where g(p) is 1 − p, "
    "(1 + cos(πp))/2 or 1 − √p. After W + S + D: r (= min_lr_ratio).",
    "if t < W: return t / W; if t < W + S: return 1.0; if t < W + S + D: p = (t − W − S) / D; "
    "return r + (1 − r) * DECAYS[self.decay](p); return r. And get_lr: [lr_0 * self.factor("
    "self.last_epoch) for lr_0 in self.base_lrs].",
])
def check_wsd(candidate):
    runs = WSD_HIDDEN if hidden_pass() else WSD_CASES
    verified = _compare(candidate, WarmupStableDecay, runs, WSD_MISTAKES)
    return f"every param group's lr at every step against helpers.lr_scheduler.WarmupStableDecay: {verified}"
