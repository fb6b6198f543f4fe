"""The checkers of notebook 03: correct optimizers pass, known wrong ones fail naming their cause."""

import time

import pytest
import torch

import helpers.optim
from helpers import check
from helpers.exercises import nb03

IDS = ["03.1", "03.2", "03.3", "03.4", "03.5"]


# --------------------------------------------------------------------------
# Correct, but written differently from the reference
# --------------------------------------------------------------------------


class ForeachSGD(torch.optim.Optimizer):
    """All of SGD, vectorized per group with torch._foreach_* (like torch's foreach path)."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov,
                                  "maximize": maximize})

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
            grads = [p.grad for p in params]
            grads = torch._foreach_neg(grads) if group["maximize"] else list(grads)
            if group["weight_decay"] != 0:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            if group["momentum"] != 0:
                bufs = []
                for p, g in zip(params, grads):
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.clone(g)
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(group["momentum"]).add_(g, alpha=1 - group["dampening"])
                    bufs.append(state["momentum_buffer"])
                if group["nesterov"]:
                    grads = torch._foreach_add(grads, bufs, alpha=group["momentum"])
                else:
                    grads = bufs
            torch._foreach_add_(params, grads, alpha=-group["lr"])
        return loss


class OutOfPlaceSGD(nb03._PerParameter):
    """The notebook's per-parameter loop, each update written as p.copy_(new value)."""

    def update(self, p, grad, state, group):
        g = -grad if group["maximize"] else grad
        g = g + group["weight_decay"] * p
        mu = group["momentum"]
        if mu:
            old = state.get("momentum_buffer")
            b = g.clone() if old is None else mu * old + (1 - group["dampening"]) * g
            state["momentum_buffer"] = b
            g = g + mu * b if group["nesterov"] else b
        p.copy_(p - group["lr"] * g)


CORRECT = [helpers.optim.SGD, torch.optim.SGD, ForeachSGD, OutOfPlaceSGD]


@pytest.mark.parametrize("exercise_id", IDS)
@pytest.mark.parametrize("optimizer", CORRECT, ids=lambda c: c.__name__)
def test_correct_optimizers_pass(exercise_id, optimizer):
    result = check(exercise_id, optimizer)
    assert result.passed, str(result)


@pytest.mark.parametrize("exercise_id", IDS)
def test_each_check_is_fast(exercise_id):
    check(exercise_id, helpers.optim.SGD)  # warm up torch's first-step imports
    start = time.perf_counter()
    check(exercise_id, helpers.optim.SGD)
    assert time.perf_counter() - start < 3.0  # about 0.1 s on an idle core; headroom for busy CI


# --------------------------------------------------------------------------
# Not attempted, raising
# --------------------------------------------------------------------------


@pytest.mark.parametrize("exercise_id", IDS)
def test_the_stub_is_not_attempted(exercise_id):
    class Stub(nb03._PerParameter):
        def update(self, p, grad, state, group):
            raise NotImplementedError(f"Exercise {exercise_id} — replace this line with your code")

    result = check(exercise_id, Stub)
    assert result.status == "not attempted", str(result)


def test_a_stub_in_the_constructor_is_not_attempted():
    class Stub(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3):
            raise NotImplementedError("Exercise 03.1 — replace this line with your code")

    assert check("03.1", Stub).status == "not attempted"


@pytest.mark.parametrize("exercise_id", IDS)
def test_a_raising_candidate_is_reported_not_raised(exercise_id):
    class Raising(nb03._PerParameter):
        def update(self, p, grad, state, group):
            return 1 / 0

    result = check(exercise_id, Raising)
    assert result.status == "failed"
    details = dict(result.details)
    assert "ZeroDivisionError" in details["your code raised"]
    assert "(step 1)" in details["case"]


# --------------------------------------------------------------------------
# Wrong versions: each fails, and the message names its cause
# --------------------------------------------------------------------------

KNOWN = [
    ("03.1", cause, cls) for cause, cls in [(nb03.UPHILL, nb03._Uphill)]
] + [
    ("03.2", cause, cls) for cause, cls in nb03.DECAY_MISTAKES.items()
] + [
    ("03.3", cause, cls)
    for cause, cls in nb03.MOMENTUM_MISTAKES.items()
] + [
    ("03.4", cause, cls) for cause, cls in nb03.NESTEROV_MISTAKES.items()
] + [
    ("03.5", cause, cls) for cause, cls in nb03.MAXIMIZE_MISTAKES.items()
]


@pytest.mark.parametrize(("exercise_id", "cause", "wrong"), KNOWN,
                         ids=[f"{i}-{cls.__name__}" for i, _, cls in KNOWN])
def test_known_wrong_versions_fail_with_their_cause(exercise_id, cause, wrong):
    result = check(exercise_id, wrong)
    assert result.status == "failed"
    assert cause in str(result), str(result)


def test_a_dampened_first_step_is_caught_on_the_first_step_of_the_dampening_case():
    result = dict(check("03.3", nb03._FirstStepDampened).details)
    assert result["case"].startswith("dampening:")
    assert result["step"].split()[0] == "1"


def test_nesterov_without_look_ahead_names_case_step_and_size_of_the_difference():
    text = str(check("03.4", nb03._NesterovIgnored))
    assert "nesterov=True" in text and "step:" in text and "largest difference" in text
    assert "without the look-ahead" in text


# Mistakes the check system itself recognises; each must be named.


class Rebinding(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p = p - group["lr"] * p.grad
        return loss


class DefaultsLr(Rebinding):
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-self.defaults["lr"])
        return loss


class NoneNotSkipped(Rebinding):
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(p.grad, alpha=-group["lr"])
        return loss


class WithoutNoGrad(Rebinding):
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        return loss


class ClosureUnderNoGrad(Rebinding):
    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        return loss


class LossNotReturned(Rebinding):
    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            with torch.enable_grad():
                closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


class DecayIntoGrad(nb03._PerParameter):
    def update(self, p, grad, state, group):
        p.add_(grad.add_(p, alpha=group["weight_decay"]), alpha=-group["lr"])


class MaximizeIntoGrad(OutOfPlaceSGD):
    def update(self, p, grad, state, group):
        super().update(p, grad.neg_() if group["maximize"] else grad,
                       state, {**group, "maximize": False})


@pytest.mark.parametrize(("exercise_id", "wrong", "words"), [
    ("03.1", Rebinding, "only rebinds a local name"),
    ("03.1", DefaultsLr, "not from self.defaults"),
    ("03.1", NoneNotSkipped, "skip them"),
    ("03.1", WithoutNoGrad, "torch.no_grad()"),
    ("03.1", ClosureUnderNoGrad, "torch.enable_grad()"),
    ("03.1", LossNotReturned, "must return the loss"),
    ("03.2", DecayIntoGrad, "step() added the weight decay to p.grad in place"),
    ("03.4", nb03._NesterovIntoGrad, "step() modified p.grad"),
    ("03.4", nb03._NesterovWithoutValidation, "refuse nesterov=True"),
    ("03.5", MaximizeIntoGrad, "step() negated p.grad in place"),
], ids=lambda v: getattr(v, "__name__", None))
def test_other_typical_mistakes_are_named(exercise_id, wrong, words):
    result = check(exercise_id, wrong)
    assert result.status == "failed"
    assert words in str(result), str(result)


# --------------------------------------------------------------------------
# Loopholes closed: hyperparameters per group, lr changes, state, closure, defaults
# --------------------------------------------------------------------------


class ClosureAfterUpdate(OutOfPlaceSGD):
    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, self.state[p], group)
        if closure is not None:
            with torch.enable_grad():
                return closure()
        return None


class DefaultLr1e2(OutOfPlaceSGD):
    def __init__(self, params, lr=1e-2, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False):
        super().__init__(params, lr, momentum, dampening, weight_decay, nesterov, maximize=maximize)


def _reading(key, source):
    """OutOfPlaceSGD that reads ``key`` from self.defaults or from group 0."""
    def update(self, p, grad, state, group):
        other = self.defaults if source == "defaults" else self.param_groups[0]
        OutOfPlaceSGD.update(self, p, grad, state, {**group, key: other[key]})
    return type(f"{key.title()}From{source.title()}", (OutOfPlaceSGD,), {"update": update})


class LrKeptFromInit(OutOfPlaceSGD):
    def __init__(self, params, lr=1e-3, **kwargs):
        super().__init__(params, lr, **kwargs)
        self.lrs = {id(p): g["lr"] for g in self.param_groups for p in g["params"]}

    def update(self, p, grad, state, group):
        super().update(p, grad, state, {**group, "lr": self.lrs.get(id(p), group["lr"])})


@pytest.mark.parametrize(("exercise_id", "wrong", "words"), [
    ("03.1", ClosureAfterUpdate, "call the closure first"),
    ("03.1", DefaultLr1e2, "your default lr is 0.01, torch's is 0.001"),
    ("03.1", LrKeptFromInit, "right after group['lr'] was changed"),
    *[(i, _reading(key, source), "" if source == "group 0" else "does not follow that group's own settings")
      for i, keys in [("03.2", ["weight_decay"]), ("03.3", ["momentum", "dampening"]),
                      ("03.4", ["nesterov"]), ("03.5", ["maximize"])]
      for key in keys for source in ("defaults", "group 0")],
], ids=lambda v: getattr(v, "__name__", None))
def test_loopholes_are_closed(exercise_id, wrong, words):
    result = check(exercise_id, wrong)
    assert result.status == "failed"
    assert words in str(result), str(result)


def test_a_momentum_buffer_lost_by_state_dict_fails_after_the_reload():
    class BufferOnlyInAttribute(OutOfPlaceSGD):
        def update(self, p, grad, state, group):
            buffers = self.__dict__.setdefault("buffers", {})
            private = {} if id(p) not in buffers else {"momentum_buffer": buffers[id(p)]}
            super().update(p, grad, private, group)
            if "momentum_buffer" in private:
                buffers[id(p)] = private["momentum_buffer"]
                state["momentum_buffer"] = private["momentum_buffer"].clone()

    details = dict(check("03.3", BufferOnlyInAttribute).details)
    assert "state_dict() was loaded into a new optimizer" in details["likely cause"]
