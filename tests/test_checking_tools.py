"""The checkers' toolkit: expect_close, expect_unchanged, compare_optimizer against torch.optim,
compare_scheduler against torch.optim.lr_scheduler."""

import math

import pytest
import torch
from torch.optim import lr_scheduler

from helpers.checking import Mismatch
from helpers.checking_tools import (
    OptimCase,
    SchedulerCase,
    compare_function,
    compare_optimizer,
    compare_scheduler,
    expect_close,
    expect_unchanged,
)

# --------------------------------------------------------------------------
# expect_close / expect_unchanged
# --------------------------------------------------------------------------


def mismatch(expected, got, **kwargs):
    with pytest.raises(Mismatch) as error:
        expect_close("the case", expected, got, **kwargs)
    assert error.value.case == "the case"
    return error.value


def test_close_values_pass():
    expect_close("c", 0.1 + 0.2, 0.3)
    expect_close("c", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]))
    expect_close("c", [torch.ones(2), 1.5], (torch.ones(2), 1.5))


def test_reports_the_largest_difference_and_where():
    expected = torch.zeros(2, 3)
    got = expected.clone()
    got[0, 1], got[1, 2] = 0.1, -0.5
    error = mismatch(expected, got, what="parameters", step=4)
    assert error.step == 4
    assert error.detail == (
        "parameters differs; largest difference 0.5 at parameters[1, 2]: expected 0.0, got -0.5"
    )
    assert error.expected is expected and error.got is got


@pytest.mark.parametrize(
    ("expected", "got", "text"),
    [
        (torch.ones(2), None, "should be a tensor, not None (did you forget `return`?)"),
        (1.0, torch.tensor(1.0), "should be a number, not a tensor (use .item()"),
        (torch.ones(2), [1.0, 1.0], "should be a tensor, not a list"),
        (torch.ones(2), "1", "should be a tensor, not a str"),
    ],
)
def test_wrong_kind(expected, got, text):
    assert text in mismatch(expected, got).cause


def test_wrong_shape_dtype_and_length():
    assert "shape (2, 1), expected (2,)" in mismatch(torch.ones(2), torch.ones(2, 1)).detail
    error = mismatch(torch.ones(2, dtype=torch.float64), torch.ones(2))
    assert "dtype torch.float32, expected torch.float64" in error.detail
    assert "float64" in error.cause
    assert "expected a list of 2" in mismatch([1.0, 2.0], [1.0]).detail


def test_nan_and_inf_are_named():
    error = mismatch(torch.ones(3), torch.tensor([1.0, math.nan, 1.0]), what="parameters")
    assert error.detail == "parameters[1] is nan"
    assert error.cause.startswith("your parameters contains NaN or inf")
    assert "NaN" in mismatch(2.0, math.inf).cause
    expect_close("c", torch.tensor([math.nan]), torch.tensor([math.nan]))  # NaN expected: fine


def test_float64_tolerance_catches_a_float32_intermediate():
    x = torch.rand(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 1
    mismatch(x, x.float().double())
    expect_close("c", x.float(), x.float() * (1 + 1e-7))


def test_expect_unchanged():
    before = [torch.ones(2), torch.zeros(3)]
    after = [t.clone() for t in before]
    expect_unchanged("c", before, after, "params")
    after[1].add_(1)
    with pytest.raises(Mismatch, match="c") as error:
        expect_unchanged("c", before, after, "params")
    assert error.value.detail == "params[1] was modified"
    assert "modified its input `params` in place" in error.value.cause
    with pytest.raises(Mismatch):
        expect_unchanged("c", {"lr": 0.1}, {"lr": 0.2}, "settings")


# --------------------------------------------------------------------------
# compare_optimizer: a readable SGD and Adam, and typical wrong versions
# --------------------------------------------------------------------------


class SGD(torch.optim.Optimizer):
    """SGD with momentum and weight decay, written differently from torch.optim.SGD."""

    def __init__(self, params, lr=1e-3, momentum=0.0, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, group, self.state[p])
        return loss

    def update(self, p, group, state):
        g = p.grad + group["weight_decay"] * p
        if group["momentum"]:
            buf = state.get("momentum_buffer")
            buf = g.clone() if buf is None else buf * group["momentum"] + g
            state["momentum_buffer"] = g = buf
        p.sub_(group["lr"] * g)


class SquaredLr(SGD):
    def update(self, p, group, state):
        p.sub_(group["lr"] ** 2 * p.grad)


class OutOfPlace(SGD):
    def update(self, p, group, state):
        p = p - group["lr"] * p.grad  # the mistake: rebinds a local name


class ReplacesParams(SGD):
    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            group["params"] = [p - group["lr"] * p.grad for p in group["params"]]


class DefaultLr(SGD):
    def update(self, p, group, state):
        p.sub_(self.defaults["lr"] * p.grad)


class NoneGradAsZero(SGD):
    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                p.sub_(group["lr"] * (g + group["weight_decay"] * p))


class Float32Buffer(SGD):
    def update(self, p, group, state):
        buf = state.setdefault("momentum_buffer", torch.zeros(p.shape))
        buf.mul_(group["momentum"]).add_(p.grad)
        p.sub_(group["lr"] * buf)


class Float32Param(SGD):
    def update(self, p, group, state):
        p.data = (p - group["lr"] * p.grad).float()


class ChangesGrad(SGD):
    def update(self, p, group, state):
        p.grad.add_(p, alpha=group["weight_decay"])
        p.sub_(group["lr"] * p.grad)


class DropsLoss(SGD):
    def step(self, closure=None):
        super().step(closure)


class Adam(torch.optim.Optimizer):
    """Adam as in Kingma & Ba, Algorithm 1 (the form torch.optim.Adam computes)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            (beta1, beta2), eps = group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                state["exp_avg"].lerp_(p.grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                p.sub_(group["lr"] * self.direction(state, beta1, beta2, eps))
        return loss

    def direction(self, state, beta1, beta2, eps):
        m_hat = state["exp_avg"] / (1 - beta1 ** state["step"])
        v_hat = state["exp_avg_sq"] / (1 - beta2 ** state["step"])
        return m_hat / (v_hat.sqrt() + eps)


class AdamNoBiasCorrection(Adam):
    def direction(self, state, beta1, beta2, eps):
        return state["exp_avg"] / (state["exp_avg_sq"].sqrt() + eps)


class AdamEpsInsideSqrt(Adam):
    def direction(self, state, beta1, beta2, eps):
        m_hat = state["exp_avg"] / (1 - beta1 ** state["step"])
        v_hat = state["exp_avg_sq"] / (1 - beta2 ** state["step"])
        return m_hat / (v_hat + eps).sqrt()


class AdamSwappedBetas(Adam):
    def direction(self, state, beta1, beta2, eps):
        return super().direction(state, beta2, beta1, eps)


class AdamStepFrom0(Adam):
    """t = 0 on the first step: m / (1 − β₁⁰) = m / 0, NaN or inf."""

    def direction(self, state, beta1, beta2, eps):
        t = state["step"] - 1
        return state["exp_avg"] / (1 - beta1**t) / ((state["exp_avg_sq"] / (1 - beta2**t)).sqrt() + eps)


SGD_CASES = [
    OptimCase("plain", lr=0.1),
    OptimCase("weight decay", lr=0.1, weight_decay=0.1),
    OptimCase("momentum, float64", lr=0.05, momentum=0.9, dtype=torch.float64),
    OptimCase("2 param groups", lr=0.1, momentum=0.5, groups=[{}, {"lr": 0.01, "momentum": 0.0}]),
    OptimCase("grad None", lr=0.1, weight_decay=0.1, grad_none={2: {1, 2, 3}, 0: {5}}),
]

ADAM_CASES = [
    OptimCase("defaults", lr=0.01),
    OptimCase("float64", lr=0.01, dtype=torch.float64),
    OptimCase("groups", lr=0.01, groups=[{}, {"lr": 0.1, "betas": (0.8, 0.99)}]),
    OptimCase("late start", lr=0.01, grad_none={1: {1, 2, 3}}),
]

ADAM_MISTAKES = {
    "this is what you get without bias correction": AdamNoBiasCorrection,
    "this is what you get with eps inside the square root": AdamEpsInsideSqrt,
}


def test_correct_but_differently_written_optimizers_pass():
    summary = compare_optimizer(SGD, torch.optim.SGD, SGD_CASES)
    assert summary == (
        "5 cases, 10 steps each: plain; weight decay; momentum, float64; 2 param groups; grad None"
    )
    compare_optimizer(Adam, torch.optim.Adam, ADAM_CASES, mistakes=ADAM_MISTAKES)


def fails(candidate, cases=SGD_CASES, reference=torch.optim.SGD, **kwargs):
    with pytest.raises(Mismatch) as error:
        compare_optimizer(candidate, reference, cases, **kwargs)
    return error.value


def test_wrong_lr_is_caught_at_the_first_step():
    error = fails(SquaredLr)
    assert (error.case, error.step) == ("plain: lr=0.1, float32", 1)
    assert error.detail.startswith("parameter 0 differs; largest difference")
    assert error.expected.shape == error.got.shape == (3,)
    assert error.cause is None  # no listed mistake explains it: no guess


def test_out_of_place_update():
    assert "`p = p - …` only rebinds a local name" in fails(OutOfPlace).cause


def test_replaced_parameters():
    assert "no longer hold the original parameter tensors" in fails(ReplacesParams).cause


def test_ignored_param_groups():
    error = fails(DefaultLr, SGD_CASES[3:4])
    assert error.case.startswith("2 param groups")
    assert error.detail.startswith("parameter 1 differs")
    assert "param group 1 {'lr': 0.01, 'momentum': 0.0}" in error.cause
    assert "read hyperparameters from `group[...]`" in error.cause


def test_grad_none_must_be_skipped():
    error = fails(NoneGradAsZero, SGD_CASES[-1:])
    assert (error.step, error.detail[:11]) == (1, "parameter 2")
    assert "changed a parameter whose .grad is None" in error.cause


def test_float64_downcast():
    case = SGD_CASES[2:3]
    assert "of float32 rounding size" in fails(Float32Buffer, case).cause
    error = fails(Float32Param, case)
    assert "dtype torch.float32, expected torch.float64" in error.detail
    assert "float64" in error.cause


def test_grad_must_not_be_modified():
    error = fails(ChangesGrad, SGD_CASES[1:2])
    assert error.detail == "parameter 0's .grad changed"
    assert "step() added the weight decay to p.grad in place" in error.cause


def test_step_closure_must_return_the_loss():
    error = fails(DropsLoss)
    assert error.step == 10
    assert "must return the loss that closure() returned" in error.cause
    compare_optimizer(DropsLoss, torch.optim.SGD, SGD_CASES[:1], closure=False)


@pytest.mark.parametrize("wrong", [AdamNoBiasCorrection, AdamEpsInsideSqrt])
def test_known_mistake_is_diagnosed(wrong):
    expected = next(cause for cause, cls in ADAM_MISTAKES.items() if cls is wrong)
    error = fails(wrong, ADAM_CASES, torch.optim.Adam, mistakes=ADAM_MISTAKES)
    assert error.cause == expected


def test_a_mistake_that_gives_nan_is_named_before_the_nan():
    def step_from_0(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):  # the same mistake, written apart
        return AdamStepFrom0(params, lr, betas, eps)

    error = fails(step_from_0, ADAM_CASES, torch.optim.Adam)
    assert (error.step, error.detail) == (1, "parameter 0[0] is nan")
    assert error.cause.startswith("your parameter 0 contains NaN or inf")
    mistakes = {**ADAM_MISTAKES, "your step counter starts at 0": AdamStepFrom0}
    assert fails(step_from_0, ADAM_CASES, torch.optim.Adam, mistakes=mistakes).cause == (
        "your step counter starts at 0"
    )


def test_unlisted_mistake_gets_no_false_diagnosis():
    error = fails(AdamSwappedBetas, ADAM_CASES, torch.optim.Adam, mistakes=ADAM_MISTAKES)
    assert error.cause is None


def test_case_label_lists_every_setting():
    case = OptimCase("x", lr=0.1, dtype=torch.float64, groups=[{}, {"lr": 0.2}], grad_none={1: [2]})
    assert case.label == (
        "x: lr=0.1, float64, 2 param groups [{}, {'lr': 0.2}], parameter 1 has grad None on steps [2]"
    )


# --------------------------------------------------------------------------
# compare_function on a function that updates its inputs in place
# --------------------------------------------------------------------------


def gd_step(params, lr):
    """p ← p − lr·∇p for every parameter, in place."""
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad


def _params():
    p = torch.tensor([1.0, -2.0], requires_grad=True)
    p.grad = torch.tensor([0.5, 0.25])
    return [p]


def _in_place(candidate, mistakes=None):
    cases = {"lr=0.1": (_params(), 0.1), "lr=0.5": {"params": _params(), "lr": 0.5}}
    return compare_function(candidate, gd_step, cases, in_place=True, mistakes=mistakes)


def test_in_place_function():
    assert _in_place(gd_step) == "2 cases: lr=0.1; lr=0.5"

    def out_of_place(params, lr):
        return [p - lr * p.grad for p in params]

    with pytest.raises(Mismatch) as error:
        _in_place(out_of_place)
    assert error.value.detail == "params[0] did not change"
    assert "did not update its input in place" in error.value.cause

    def zeroes_grad(params, lr):
        gd_step(params, lr)
        params[0].grad.zero_()

    with pytest.raises(Mismatch) as error:
        _in_place(zeroes_grad)
    assert error.value.detail.startswith("params[0].grad differs")

    def plus(params, lr):
        with torch.no_grad():
            params[0] += lr * params[0].grad

    with pytest.raises(Mismatch) as error:
        _in_place(plus, mistakes={"you added the gradient": plus})
    assert error.value.cause == "you added the gradient"


# --------------------------------------------------------------------------
# compare_scheduler: StepLR and ExponentialLR written another way, and wrong ones
# --------------------------------------------------------------------------


class StepLR(lr_scheduler.LRScheduler):
    """StepLR, recursive: the current lr times gamma at every step_size-th step."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [group["lr"] * self.factor(i) for i, group in enumerate(self.optimizer.param_groups)]

    def factor(self, group):
        t = self.last_epoch
        return self.gamma if t > 0 and t % self.step_size == 0 else 1.0


class SquaredGammaInGroup1(StepLR):
    def factor(self, group):
        return super().factor(group) ** (2 if group == 1 else 1)


class DropsAtStep0(StepLR):
    def factor(self, group):
        return self.gamma if self.last_epoch % self.step_size == 0 else 1.0


class ClosedFormStepLR(StepLR):
    """Right on its own; in a ChainedScheduler it overwrites the other scheduler's factor."""

    def get_lr(self):
        return [lr_0 * self.gamma ** (self.last_epoch // self.step_size) for lr_0 in self.base_lrs]


def exponential(optimizer, gamma):
    return lr_scheduler.LambdaLR(optimizer, lambda t: gamma**t)


def constant(optimizer, **settings):
    return lr_scheduler.LambdaLR(optimizer, lambda t: 1.0)


STEP_CASES = [
    SchedulerCase("halve every 3 steps", step_size=3, gamma=0.5, steps=10),
    SchedulerCase("Adam, 3 groups", step_size=2, lrs=(1.0, 0.5, 0.01), optimizer="Adam", steps=7),
    SchedulerCase("chained", step_size=3, gamma=0.5, steps=8,
                  chain=lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9)),
]


def test_schedulers_written_another_way_pass():
    summary = compare_scheduler(StepLR, lr_scheduler.StepLR, STEP_CASES)
    assert summary == (
        "3 settings, every param group's lr at every step: halve every 3 steps; Adam, 3 groups; chained"
    )
    compare_scheduler(exponential, lr_scheduler.ExponentialLR, [SchedulerCase("x", gamma=0.9)])


def scheduler_fails(candidate, cases=STEP_CASES, **kwargs):
    with pytest.raises(Mismatch) as error:
        compare_scheduler(candidate, lr_scheduler.StepLR, cases, **kwargs)
    return error.value


def test_wrong_lr_is_caught_at_its_step_and_group():
    error = scheduler_fails(SquaredGammaInGroup1)
    # rows are the lrs each step trains with: steps 0–2 at lr_0, step 3 one drop, lr_0·0.5
    assert (error.case, error.step) == (
        "halve every 3 steps: step_size=3, gamma=0.5, SGD with group lrs [0.1, 0.02]", 3)
    assert (error.expected, error.got) == pytest.approx((0.01, 0.005))
    assert error.detail == (
        "the lr of param group 1 (of 2) at step 3; all groups: expected [0.05, 0.01], got [0.05, 0.005]"
    )
    assert error.cause is None


def test_known_mistake_is_named_if_it_passes_the_cases_before():
    mistakes = {"you decay at step 0": DropsAtStep0}
    assert scheduler_fails(DropsAtStep0, mistakes=mistakes).cause == "you decay at step 0"
    assert scheduler_fails(SquaredGammaInGroup1, mistakes=mistakes).cause is None
    # a constant lr gives the closed form's lrs in the chain up to its first difference
    # (step 2), but not StepLR's in the cases before: not the cause
    mistakes = {"you never decay": constant, "a closed form overwrites the chain": ClosedFormStepLR}
    error = scheduler_fails(ClosedFormStepLR, mistakes=mistakes)
    assert (error.case[:7], error.step, error.cause) == ("chained", 2, "a closed form overwrites the chain")


def test_lrs_that_are_not_numbers_are_named():
    class TensorLrs(StepLR):
        def get_lr(self):
            return [torch.tensor(lr) for lr in super().get_lr()]

    error = scheduler_fails(TensorLrs)
    assert error.step == 0 and "get_lr() returned tensors" in error.cause


# --------------------------------------------------------------------------
# compare_optimizer: the loopholes it closes, and the replay rule
# --------------------------------------------------------------------------


class Sgd(SGD):
    """The readable SGD with torch's defaults and signature, for the cases below."""


PER_GROUP = OptimCase.per_group(
    "every hyperparameter per group", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1},
    [{"lr": 0.05, "momentum": 0.5, "weight_decay": 0.0}, {"lr": 0.2, "momentum": 0.0, "weight_decay": 0.2}],
    {"lr": 0.02, "momentum": 0.8, "weight_decay": 0.3})


def test_per_group_refuses_a_case_where_a_hyperparameter_does_not_differ():
    with pytest.raises(ValueError, match="'momentum' must differ"):
        OptimCase.per_group("x", {"lr": 0.1, "momentum": 0.9}, [{"lr": 0.2, "momentum": 0.9}],
                            {"lr": 0.3, "momentum": 0.9})
    with pytest.raises(ValueError, match="every group must set 'momentum'"):
        OptimCase.per_group("x", {"lr": 0.1, "momentum": 0.9}, [{"lr": 0.2}], {"lr": 0.3, "momentum": 0.5})


class MomentumOfGroup0(SGD):
    def update(self, p, group, state):
        super().update(p, {**group, "momentum": self.param_groups[0]["momentum"]}, state)


class LrCachedInInit(SGD):
    def __init__(self, params, lr=1e-3, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr, momentum, weight_decay)
        self.lr = lr

    def update(self, p, group, state):
        super().update(p, {**group, "lr": self.lr}, state)


class CounterInAttribute(SGD):
    """Momentum that restarts when the optimizer is rebuilt: the buffers it uses live in an
    attribute (a copy sits in the state, under torch's key)."""

    def update(self, p, group, state):
        buffers = self.__dict__.setdefault("buffers", {})
        g = p.grad + group["weight_decay"] * p
        if group["momentum"]:
            buf = buffers.get(p)
            buffers[p] = g = g.clone() if buf is None else buf * group["momentum"] + g
            state["momentum_buffer"] = g.clone()
        p.sub_(group["lr"] * g)


class EagerState(SGD):
    def __init__(self, params, lr=1e-3, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr, momentum, weight_decay)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p)


class ClosureAfterUpdate(SGD):
    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, group, self.state[p])
        if closure is not None:
            with torch.enable_grad():
                return closure()
        return None


class DefaultLr01(SGD):
    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr, momentum, weight_decay)


class ForeachSgd(torch.optim.Optimizer):
    """The same SGD vectorized per group: a right alternative."""

    def __init__(self, params, lr=1e-3, momentum=0.0, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = list(torch._foreach_add([p.grad for p in params], params, alpha=group["weight_decay"]))
            if group["momentum"]:
                for i, p in enumerate(params):
                    state = self.state[p]
                    if "momentum_buffer" in state:
                        state["momentum_buffer"].mul_(group["momentum"]).add_(grads[i])
                    else:
                        state["momentum_buffer"] = grads[i].clone()
                    grads[i] = state["momentum_buffer"]
            torch._foreach_add_(params, grads, alpha=-group["lr"])
        return loss


LONG = OptimCase("long", lr=0.01, momentum=0.9, steps=150, reload_at=75, lr_scale={50: 0.5},
                 grads_in_place=True)


@pytest.mark.parametrize("right", [SGD, ForeachSgd, torch.optim.SGD])
def test_right_alternatives_pass_every_protocol(right):
    summary = compare_optimizer(right, torch.optim.SGD, [*SGD_CASES, PER_GROUP, LONG])
    assert summary.startswith("7 cases, 10–150 steps")


@pytest.mark.parametrize(("wrong", "words"), [
    (MomentumOfGroup0, "does not follow that group's own settings"),
    (LrCachedInInit, "right after group['lr'] was changed"),
    (CounterInAttribute, "right after state_dict() was loaded into a new optimizer"),
    (EagerState, "state before the first step()"),
    (ClosureAfterUpdate, "call the closure first"),
    (DefaultLr01, "your default lr is 0.01, torch's is 0.001"),
])
def test_each_loophole_is_closed_with_what_it_shows(wrong, words):
    cases = [OptimCase("defaults"), OptimCase("lr changed", lr=0.1, lr_scale={3: 0.5}),
             OptimCase("reloaded", lr=0.1, momentum=0.9, reload_at=3), PER_GROUP, LONG]
    error = fails(wrong, cases)
    assert words in error.cause, error.cause


def test_a_parameter_that_never_had_a_gradient_has_no_state():
    class StateForAll(SGD):
        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
            return super().step(closure)

    error = fails(StateForAll, [OptimCase("grad None", lr=0.1, momentum=0.9, grad_none={1: [1, 2]})])
    assert error.detail == "optimizer.state[parameter 1] after step 1"
    assert "which has had no gradient yet" in error.cause


class MomentumIgnoredAfterStep3(SGD):
    """Right on every short case, wrong from step 4 on."""

    def update(self, p, group, state):
        state["n"] = state.get("n", 0) + 1
        super().update(p, group if state["n"] <= 3 else {**group, "momentum": 0.0}, state)


class MomentumIgnored(SGD):
    def update(self, p, group, state):
        super().update(p, {**group, "momentum": 0.0}, state)


def test_a_mistake_is_named_only_if_it_replays_every_earlier_case():
    """MomentumIgnored reproduces the failing case's first differing steps (momentum off) but
    not the earlier case, where the candidate used momentum: it is not named."""
    short = OptimCase("short", lr=0.1, momentum=0.9, steps=3)
    later = OptimCase("later", lr=0.1, momentum=0.9, steps=3, grad_none={0: [1, 2, 3]})
    mistakes = {"momentum ignored": MomentumIgnored}
    assert fails(MomentumIgnored, [later], mistakes=mistakes).cause == "momentum ignored"

    class IgnoredAfterAnEarlierCase(SGD):
        calls = 0

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            type(self).calls += 1

        def update(self, p, group, state):
            first_case = type(self).calls == 1
            super().update(p, group if first_case else {**group, "momentum": 0.0}, state)

    error = fails(IgnoredAfterAnEarlierCase, [short, later], mistakes=mistakes)
    assert error.case.startswith("later")
    assert error.cause is None


def test_the_failing_case_is_replayed_to_its_end_before_a_cause_is_named():
    """Both mistakes give step 4 alike; only the whole case tells them apart."""
    class MomentumHalvedAfterStep3(SGD):
        def update(self, p, group, state):
            state["n"] = state.get("n", 0) + 1
            momentum = group["momentum"] if state["n"] <= 3 else (0.0 if state["n"] == 4 else 0.45)
            super().update(p, {**group, "momentum": momentum}, state)

    case_ = [OptimCase("m", lr=0.1, momentum=0.9, steps=8)]
    mistakes = {"ignored after step 3": MomentumIgnoredAfterStep3, "halved": MomentumHalvedAfterStep3}
    assert fails(MomentumHalvedAfterStep3, case_, mistakes=mistakes).cause == "halved"


def test_a_none_error_gets_the_grad_none_hint_only_where_a_grad_is_none():
    class Crashes(SGD):
        def update(self, p, group, state):
            state.get("momentum_buffer").mul_(2)

    with pytest.raises(AttributeError) as error:
        compare_optimizer(Crashes, torch.optim.SGD, [OptimCase("all grads", lr=0.1)])
    assert not hasattr(error.value, "_stepwise_hint")
    with pytest.raises(AttributeError) as error:
        compare_optimizer(Crashes, torch.optim.SGD, [OptimCase("grad None", lr=0.1, grad_none={1: [1]})])
    assert "unused in the loss" in error.value._stepwise_hint
