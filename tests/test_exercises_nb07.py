"""Notebook 07 checkers: right schedulers pass however written, known wrong ones fail naming why."""

import math
import time

import pytest
import torch

from helpers import lr_scheduler as ours
from helpers.checking import check
from helpers.checking_tools import shown_pair
from helpers.exercises import nb07

IDS = ["07.1", "07.2", "07.3", "07.4"]
REFERENCES = {"07.1": ours.LRScheduler, "07.2": ours.StepLR, "07.3": nb07.WarmupCosine,
              "07.4": ours.WarmupStableDecay}


def _cause(result):
    return dict(result.details).get("likely cause", "")


# --------------------------------------------------------------------------
# The references: by hand, and torch's three-scheduler warmup + cosine
# --------------------------------------------------------------------------


def test_warmup_cosine_by_hand():
    # W=3, T=7, lr_0=0.8, eta_min=0: warmup 0.8·(t+1)/4, cosine over 4 steps, then 0
    by_hand = [0.2, 0.4, 0.6, 0.8, 0.4 + 0.4 * math.cos(math.pi / 4), 0.4, 0.4 - 0.4 * math.cos(math.pi / 4),
               0.0, 0.0]
    for make in (lambda o: nb07.WarmupCosine(o, 3, 7), lambda o: nb07.warmup_cosine_torch(o, 3, 7)):
        assert ours.lr_curve(make, 9, lr=0.8) == pytest.approx(by_hand, abs=1e-12)


# --------------------------------------------------------------------------
# Right answers, written differently
# --------------------------------------------------------------------------


class TerseBase:
    """A correct base class written another way: lrs kept as a tuple zip, explicit loop over indices."""

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        groups = optimizer.param_groups
        if last_epoch != -1 and any("initial_lr" not in g for g in groups):
            raise KeyError("initial_lr")
        for g in groups:
            if "initial_lr" not in g:
                g["initial_lr"] = g["lr"]
        self.base_lrs = [groups[i]["initial_lr"] for i in range(len(groups))]
        self.last_epoch = last_epoch
        self.step()

    def step(self):
        self.last_epoch = self.last_epoch + 1
        new = list(self.get_lr())
        for i in range(len(new)):
            self.optimizer.param_groups[i]["lr"] = new[i]
        self._last_lr = new

    def get_last_lr(self):
        return self._last_lr

    def state_dict(self):
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state):
        vars(self).update(state)


class FloorDivStepLR(ours.LRScheduler):
    """Recursive StepLR that finds a drop by comparing ⌊t/s⌋ with ⌊(t−1)/s⌋."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, s = self.last_epoch, self.step_size
        drops = t // s - max(t - 1, 0) // s
        return [g["lr"] * self.gamma**drops for g in self.optimizer.param_groups]


class TorchMathWarmupCosine(ours.LRScheduler):
    """Closed form through a factor, clamped progress and torch.cos."""

    def __init__(self, optimizer, warmup_steps, total_steps, eta_min=0.0, last_epoch=-1):
        self.warmup_steps, self.total_steps, self.eta_min = warmup_steps, total_steps, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, W, T = self.last_epoch, self.warmup_steps, self.total_steps
        if t < W:
            return [lr_0 * (t + 1) / (W + 1) for lr_0 in self.base_lrs]
        p = min(1.0, (t - W) / (T - W))
        c = 0.5 * (1 + torch.cos(torch.tensor(math.pi * p, dtype=torch.float64)).item())
        return [self.eta_min + (lr_0 - self.eta_min) * c for lr_0 in self.base_lrs]


def _piecewise_wsd(base):
    """WSD with the phase found from clamped progress, on ``base``."""

    class PiecewiseWSD(base):
        def __init__(self, optimizer, warmup_steps, stable_steps, decay_steps, min_lr_ratio=0.0,
                     decay="linear", last_epoch=-1):
            self.W, self.S, self.D = warmup_steps, stable_steps, decay_steps
            self.r, self.decay = min_lr_ratio, decay
            super().__init__(optimizer, last_epoch)

        def get_lr(self):
            t = self.last_epoch
            if t < self.W:
                f = t / self.W
            else:
                p = min(max((t - self.W - self.S) / self.D, 0.0), 1.0) if self.D else 1.0
                shapes = {"linear": 1 - p, "cosine": (1 + math.cos(math.pi * p)) / 2, "1-sqrt": 1 - p**0.5}
                g = shapes[self.decay]
                f = self.r + (1 - self.r) * g
            return [lr_0 * f for lr_0 in self.base_lrs]

    return PiecewiseWSD


PiecewiseWSD = _piecewise_wsd(ours.LRScheduler)


@pytest.mark.parametrize("exercise", IDS)
def test_references_pass(exercise):
    assert check(exercise, REFERENCES[exercise]).passed


@pytest.mark.parametrize(
    ("exercise", "candidate"),
    [("07.1", TerseBase), ("07.2", FloorDivStepLR), ("07.3", TorchMathWarmupCosine), ("07.4", PiecewiseWSD)],
)
def test_differently_written_answers_pass(exercise, candidate):
    assert check(exercise, candidate).passed


class _LearnerStep(TerseBase):
    """The learner's StepLR on the learner's own base class."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        drop = self.last_epoch > 0 and self.last_epoch % self.step_size == 0
        return [g["lr"] * self.gamma if drop else g["lr"] for g in self.optimizer.param_groups]


@pytest.mark.refuses_library
def test_subclasses_of_a_correct_learner_base_pass():
    assert check("07.2", _LearnerStep).passed


@pytest.mark.refuses_library
@pytest.mark.parametrize("base", [TerseBase, ours.LRScheduler, torch.optim.lr_scheduler.LRScheduler],
                         ids=["learner's base", "helpers' base", "torch's base"])
def test_a_borrowed_get_lr_is_refused(base):
    class Borrowed(base):
        def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
            self.step_size, self.gamma = step_size, gamma
            super().__init__(optimizer, last_epoch)

        get_lr = ours.StepLR.get_lr

    result = check("07.2", Borrowed)
    assert result.status == "failed"
    assert "takes its get_lr from the reference StepLR" in dict(result.details)["not an answer"]


class _CallsReferenceCosine(ours.LRScheduler):
    """Its get_lr hands the work to the reference's."""

    def __init__(self, optimizer, warmup_steps, total_steps, eta_min=0.0, last_epoch=-1):
        self.warmup_steps, self.total_steps, self.eta_min = warmup_steps, total_steps, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return nb07.WarmupCosine.get_lr(self)


class _TorchBase(torch.optim.lr_scheduler.LRScheduler):
    pass


class _FactorFromWSD(ours.LRScheduler):
    def __init__(self, optimizer, warmup_steps, stable_steps, decay_steps, min_lr_ratio=0.0,
                 decay="linear", last_epoch=-1):
        self.warmup_steps, self.stable_steps, self.decay_steps = warmup_steps, stable_steps, decay_steps
        self.min_lr_ratio, self.decay = min_lr_ratio, decay
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [lr_0 * ours.WarmupStableDecay.factor(self, self.last_epoch) for lr_0 in self.base_lrs]


@pytest.mark.refuses_library
@pytest.mark.parametrize(
    ("exercise", "candidate", "verdict"),
    [
        ("07.1", ours.LRScheduler, "this is the reference LRScheduler"),
        ("07.1", torch.optim.lr_scheduler.LRScheduler, "this is torch's own LRScheduler"),
        ("07.1", _TorchBase, "subclasses torch's own LRScheduler"),
        ("07.2", torch.optim.lr_scheduler.StepLR, "this is torch's own StepLR"),
        ("07.2", ours.StepLR, "this is the reference StepLR"),
        ("07.3", nb07.WarmupCosine, "this is the reference WarmupCosine"),
        ("07.3", _CallsReferenceCosine, "calls the reference WarmupCosine"),
        ("07.4", ours.WarmupStableDecay, "this is the reference WarmupStableDecay"),
        ("07.4", _FactorFromWSD, "calls the reference WarmupStableDecay"),
    ],
    ids=["07.1 ours", "07.1 torch", "07.1 torch subclass", "07.2 torch", "07.2 ours", "07.3 ours",
         "07.3 delegates", "07.4 ours", "07.4 borrows factor"],
)
def test_the_library_is_refused(exercise, candidate, verdict):
    result = check(exercise, candidate)
    assert result.status == "failed"
    assert verdict in dict(result.details)["not an answer"]


# --------------------------------------------------------------------------
# 07.1 mistakes
# --------------------------------------------------------------------------


def _base(init_groups=None, step_first=False, initial_step=True, last_lr=True, base_from="initial_lr",
          check_resume=True):
    """A base class with one mistake switched on."""

    class Base:
        def __init__(self, optimizer, last_epoch=-1):
            self.optimizer = optimizer
            for group in optimizer.param_groups:
                if last_epoch == -1 or not check_resume:
                    (init_groups or (lambda g: g.setdefault("initial_lr", g["lr"])))(group)
                elif "initial_lr" not in group:
                    raise KeyError("initial_lr")
            self.base_lrs = [group[base_from] for group in optimizer.param_groups]
            self.last_epoch = last_epoch
            if initial_step:
                self.step()

        def step(self):
            if step_first:
                lrs = self.get_lr()
                self.last_epoch += 1
            else:
                self.last_epoch += 1
                lrs = self.get_lr()
            for group, lr in zip(self.optimizer.param_groups, lrs):
                group["lr"] = lr
            if last_lr == "get_lr":  # a second call: a recursive get_lr moves on once more
                self._last_lr = self.get_lr()
            elif last_lr:
                self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

        def state_dict(self):
            return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

        def load_state_dict(self, state):
            self.__dict__.update(state)

    return Base


@pytest.mark.parametrize(
    ("candidate", "cause"),
    [
        (_base(initial_step=False), "the constructor must end with the first step"),
        (_base(step_first=True), "one step late"),
        (_base(last_lr=False), "self._last_lr"),
        (_base(last_lr="get_lr"), "self._last_lr = [group['lr'] for group in"),
        (_base(init_groups=lambda g: g.__setitem__("initial_lr", g["lr"])), "do not overwrite it"),
        (_base(base_from="lr"), "base_lrs are the groups' initial_lr"),
        (_base(check_resume=False), "raise KeyError like torch"),
    ],
    ids=["no initial step", "step order", "no _last_lr", "_last_lr from get_lr()", "initial_lr overwritten",
         "base_lrs from lr", "no KeyError"],
)
def test_base_mistakes_are_named(candidate, cause):
    result = check("07.1", candidate)
    assert result.status == "failed"
    assert cause in _cause(result)


# --------------------------------------------------------------------------
# 07.2–07.4 mistakes: each one is replayed and named
# --------------------------------------------------------------------------

MISTAKES = [("07.2", nb07.STEP_MISTAKES), ("07.3", nb07.COSINE_MISTAKES), ("07.4", nb07.WSD_MISTAKES)]


@pytest.mark.parametrize(
    ("exercise", "cause"),
    [(exercise, cause) for exercise, mistakes in MISTAKES for cause in mistakes],
)
def test_scheduler_mistakes_are_named(exercise, cause):
    wrong = dict(MISTAKES)[exercise][cause]
    result = check(exercise, wrong)
    assert result.status == "failed"
    assert _cause(result) == cause


def test_mismatch_names_case_step_and_group():
    result = check("07.2", nb07.STEP_MISTAKES[next(iter(nb07.STEP_MISTAKES))])  # decays at step 0
    details = dict(result.details)
    assert details["case"].startswith("halve every 3 steps")
    assert details["step"] == "1" and "param group 0" in details["detail"]
    assert "optimizer step 1 trains with (last_epoch 0)" in details["detail"]


def test_tensor_lrs_are_diagnosed():
    class TensorStepLR(nb07._StepLR):
        def get_lr(self):
            return [torch.tensor(g["lr"]) for g in self.optimizer.param_groups]

    assert "returned tensors" in _cause(check("07.2", TensorStepLR))


def test_unexplained_wrong_answer_has_no_made_up_cause():
    class SquaredGamma(nb07._StepLR):
        def get_lr(self):
            drop = self.last_epoch > 0 and self.last_epoch % self.step_size == 0
            return [g["lr"] * self.gamma**2 if drop else g["lr"] for g in self.optimizer.param_groups]

    result = check("07.2", SquaredGamma)
    assert result.status == "failed" and "likely cause" not in dict(result.details)


# --------------------------------------------------------------------------
# Shared: stubs, errors, speed
# --------------------------------------------------------------------------


def _stub_class():
    class Stub:
        def __init__(self, optimizer, *args, **kwargs):
            raise NotImplementedError("Exercise 07.K: replace this line with your code")

    return Stub


@pytest.mark.parametrize("exercise", IDS)
def test_stub_is_not_attempted(exercise):
    assert check(exercise, _stub_class()).status == "not attempted"


def test_stub_get_lr_is_not_attempted():
    class StubStep(ours.LRScheduler):
        def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
            super().__init__(optimizer, last_epoch)

        def get_lr(self):
            raise NotImplementedError("Exercise 07.2: replace this line with your code")

    assert check("07.2", StubStep).status == "not attempted"


@pytest.mark.parametrize("exercise", IDS)
def test_raising_candidate_is_reported(exercise):
    class Broken:
        def __init__(self, optimizer, *args, **kwargs):
            raise KeyError("lr")

    result = check(exercise, Broken)
    assert result.status == "failed"
    assert dict(result.details)["your code raised"] == "KeyError: 'lr'"


@pytest.mark.parametrize("exercise", IDS)
def test_each_check_is_fast(exercise):
    check(exercise, REFERENCES[exercise])
    start = time.perf_counter()
    assert check(exercise, REFERENCES[exercise]).passed
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------
# Wrong answers the notebook invites, beyond the replayed mistakes
# --------------------------------------------------------------------------


class OwnCopyStepLR(nb07._StepLR):
    """Recursive on a copy of its own lrs, not the groups': blind to what else changes the lr."""

    def get_lr(self):
        if self.last_epoch == 0:
            self.lrs = list(self.base_lrs)
        elif self.last_epoch % self.step_size == 0:
            self.lrs = [lr * self.gamma for lr in self.lrs]
        return list(self.lrs)


class FirstDropOnlyStepLR(nb07._StepLR):
    def get_lr(self):
        drop = self.last_epoch == self.step_size
        return [g["lr"] * self.gamma if drop else g["lr"] for g in self.optimizer.param_groups]


class HoldsCurrentLrCosine(nb07.WarmupCosine):
    """After total_steps it keeps the lr it finds: right unless the lr was changed."""

    def get_lr(self):
        if self.last_epoch > self.total_steps + 1:
            return [g["lr"] for g in self.optimizer.param_groups]
        return super().get_lr()


def test_a_recursive_step_lr_on_its_own_copy_is_not_called_a_closed_form():
    result = check("07.2", OwnCopyStepLR)
    assert result.status == "failed" and "chained" in dict(result.details)["case"]
    assert _cause(result).startswith("your StepLR does not start from the lr it finds in each group")
    assert "or from lrs it keeps itself" in _cause(result)


def test_only_the_first_drop_fails_without_a_cause():
    result = check("07.2", FirstDropOnlyStepLR)
    assert result.status == "failed" and "likely cause" not in dict(result.details)
    assert dict(result.details)["step"] == "7"  # last_epoch 6, the second drop


def test_a_floor_kept_from_the_current_lr_fails_when_the_lr_is_changed():
    result = check("07.3", HoldsCurrentLrCosine)
    assert result.status == "failed" and "halved by hand" in dict(result.details)["case"]


@pytest.mark.refuses_library
def test_right_answers_on_torchs_base_class_pass():
    assert check("07.4", _piecewise_wsd(torch.optim.lr_scheduler.LRScheduler)).passed


def test_messages_show_rounded_numbers():
    result = check("07.3", nb07.COSINE_MISTAKES[next(iter(nb07.COSINE_MISTAKES))])  # warmup from 0
    details = dict(result.details)
    assert details["expected"] == "0.0166667" and details["got"] == "0"
    assert shown_pair(0.1, 0.1 + 1e-12) == ("0.1", "0.100000000001")
    assert shown_pair(0.1, None) == (0.1, None)
