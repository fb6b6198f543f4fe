"""Notebook 03, your own optimizer: SGD built in five stages.

Every checker steps the learner's optimizer class next to ``torch.optim.SGD``
on seeded parameters and gradients (``compare_optimizer``) and, on the first
difference, replays the typical wrong versions below to name the mistake.
The wrong versions are small ``Optimizer`` subclasses; the tests feed them
back to the checkers.
"""

import torch

from helpers.checking import Mismatch, case, exercise
from helpers.checking_tools import OptimCase, compare_optimizer, expect_close
from helpers.optim import SGD

from ._per_parameter import PerParameter

# --------------------------------------------------------------------------
# Known wrong versions. _PerParameter is the loop of the notebook: step() calls
# update(p, grad, state, group) for every parameter that has a gradient.
# --------------------------------------------------------------------------


class _PerParameter(PerParameter):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov,
                                  "maximize": maximize})


def _decayed(p, grad, group):
    return grad + group["weight_decay"] * p


def _momentum(g, state, group):
    """torch's momentum buffer: b₁ = g, then b ← μ·b + (1 − τ)·g."""
    if "momentum_buffer" not in state:
        state["momentum_buffer"] = g.clone()
    else:
        state["momentum_buffer"].mul_(group["momentum"]).add_(g, alpha=1 - group["dampening"])
    return state["momentum_buffer"]


def _sgd_update(p, grad, state, group, sign=1):
    """torch's SGD update without maximize; ``sign`` flips the whole step."""
    g = _decayed(p, grad, group)
    if group["momentum"] != 0:
        buf = _momentum(g, state, group)
        g = g + group["momentum"] * buf if group["nesterov"] else buf
    p.add_(g, alpha=-sign * group["lr"])


class _Uphill(_PerParameter):
    def update(self, p, grad, state, group):
        p.add_(grad, alpha=group["lr"])


class _DecayWrongSign(_PerParameter):
    def update(self, p, grad, state, group):
        p.add_(grad - group["weight_decay"] * p, alpha=-group["lr"])


class _DecayWithoutLr(_PerParameter):
    def update(self, p, grad, state, group):
        p.mul_(1 - group["weight_decay"]).add_(grad, alpha=-group["lr"])


class _DecayOfGradient(_PerParameter):
    def update(self, p, grad, state, group):
        p.add_(grad + group["weight_decay"] * grad, alpha=-group["lr"])


class _FirstStepDampened(_PerParameter):
    def update(self, p, grad, state, group):
        g = _decayed(p, grad, group)
        if group["momentum"] != 0:
            buf = state.setdefault("momentum_buffer", torch.zeros_like(p))
            g = buf.mul_(group["momentum"]).add_(g, alpha=1 - group["dampening"])
        p.add_(g, alpha=-group["lr"])


class _BufferForgotten(_PerParameter):
    def update(self, p, grad, state, group):
        p.add_(_decayed(p, grad, group), alpha=-group["lr"])


class _DampeningNotOneMinus(_PerParameter):
    def update(self, p, grad, state, group):
        g = _decayed(p, grad, group)
        if group["momentum"] != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.clone()
            else:
                state["momentum_buffer"].mul_(group["momentum"]).add_(g, alpha=group["dampening"])
            g = state["momentum_buffer"]
        p.add_(g, alpha=-group["lr"])


class _DecayAfterMomentum(_PerParameter):
    def update(self, p, grad, state, group):
        g = grad
        if group["momentum"] != 0:
            g = _momentum(g, state, group)
        p.add_(_decayed(p, g, group), alpha=-group["lr"])


class _BufferEvenWithoutMomentum(_PerParameter):
    def update(self, p, grad, state, group):
        g = _momentum(_decayed(p, grad, group), state, group)
        p.add_(g, alpha=-group["lr"])


class _BufferAliasesGrad(_PerParameter):
    def update(self, p, grad, state, group):
        g = _decayed(p, grad, group) if group["weight_decay"] else grad
        if group["momentum"] != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g  # no .clone(): the buffer *is* p.grad
            else:
                state["momentum_buffer"].mul_(group["momentum"]).add_(
                    g, alpha=1 - group["dampening"])
            g = state["momentum_buffer"]
        p.add_(g, alpha=-group["lr"])


class _LrInsideBuffer(_PerParameter):
    """Sutskever et al.'s form: v ← μ·v + lr·g, θ ← θ − v (same numbers while lr is constant)."""

    def update(self, p, grad, state, group):
        g = _decayed(p, grad, group) * group["lr"]
        if group["momentum"] != 0:
            g = _momentum(g, state, group)
        p.sub_(g)


class _NesterovIgnored(_PerParameter):
    def update(self, p, grad, state, group):
        g = _decayed(p, grad, group)
        if group["momentum"] != 0:
            g = _momentum(g, state, group)
        p.add_(g, alpha=-group["lr"])


class _NesterovWithoutMu(_PerParameter):
    def update(self, p, grad, state, group):
        g = _decayed(p, grad, group)
        if group["momentum"] != 0:
            buf = _momentum(g, state, group)
            g = g + buf if group["nesterov"] else buf
        p.add_(g, alpha=-group["lr"])


class _NesterovIntoGrad(_PerParameter):
    def update(self, p, grad, state, group):
        g = grad  # no weight decay in the cases where this bites: g *is* p.grad
        if group["momentum"] != 0:
            buf = _momentum(g, state, group)
            g = g.add_(buf, alpha=group["momentum"]) if group["nesterov"] else buf
        p.add_(g, alpha=-group["lr"])


class _NesterovWithoutValidation(SGD):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False):
        torch.optim.Optimizer.__init__(self, params, {
            "lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
            "nesterov": nesterov, "maximize": maximize})


class _BufferOneStepLate(_PerParameter):
    """Steps along the buffer of the step before, then updates it."""

    def update(self, p, grad, state, group):
        g = _decayed(p, grad, group)
        if group["momentum"] == 0:
            p.add_(g, alpha=-group["lr"])
        elif "momentum_buffer" not in state:
            state["momentum_buffer"] = g.clone()
            p.add_(g, alpha=-group["lr"])
        else:
            buf = state["momentum_buffer"]
            p.add_(buf, alpha=-group["lr"])
            buf.mul_(group["momentum"]).add_(g, alpha=1 - group["dampening"])


class _NesterovSwapped(_PerParameter):
    def update(self, p, grad, state, group):
        g = _decayed(p, grad, group)
        if group["momentum"] != 0:
            buf = _momentum(g, state, group)
            g = buf + group["momentum"] * g if group["nesterov"] else buf
        p.add_(g, alpha=-group["lr"])


class _MaximizeIgnored(_PerParameter):
    def update(self, p, grad, state, group):
        _sgd_update(p, grad, state, group)


class _MaximizeNegatesEverything(_PerParameter):
    def update(self, p, grad, state, group):
        sign = -1 if group["maximize"] else 1
        _sgd_update(p, grad, state, group, sign=sign)


# --------------------------------------------------------------------------
# Checks beyond compare_optimizer
# --------------------------------------------------------------------------


def _fit_with_closure(cls, steps=3):
    """A seeded linear model trained by step(closure); returns (last loss, parameters)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    optimizer = cls(model.parameters(), lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(steps):
        loss = optimizer.step(closure)
    return loss, [p.detach().clone() for p in model.parameters()]


def _closure_through_autograd(candidate):
    """step(closure) where the closure really runs forward and backward, as LBFGS needs."""
    label = "step(closure) with a closure that calls loss.backward()"
    expected_loss, expected = _fit_with_closure(torch.optim.SGD)
    try:
        with case(label):
            loss, got = _fit_with_closure(candidate)
    except RuntimeError as error:
        if "does not require grad" in str(error):
            raise Mismatch(label, cause="step() runs under torch.no_grad(), so the closure "
                           "could not backpropagate: call it inside "
                           "`with torch.enable_grad():`") from None
        raise
    expect_close(label, expected_loss, loss, what="loss returned by step()")
    expect_close(label, expected, got, what="parameters")


def _nesterov_validated(candidate):
    label = "nesterov=True with momentum=0"
    try:
        with case(label):
            candidate([torch.zeros(2, requires_grad=True)], lr=0.1, nesterov=True)
    except ValueError:
        return
    raise Mismatch(label, "ValueError", "no error",
                   cause="like torch, refuse nesterov=True unless momentum > 0 and dampening == 0"
                         " (Nesterov needs a momentum to look ahead with)")


# --------------------------------------------------------------------------
# The exercises
# --------------------------------------------------------------------------

UPHILL = ("your parameters move uphill, by +lr·grad: gradient descent subtracts, "
          "p.add_(p.grad, alpha=-lr)")


PLAIN_CASES = [
    OptimCase("first steps", lr=0.1),
    OptimCase("default lr"),
    OptimCase("grad None", lr=0.1, grad_none={1: [1, 2, 3], 2: [2]}),
    OptimCase("two param groups", lr=0.1, groups=[{}, {"lr": 0.01}]),
    OptimCase("float64", lr=0.1, dtype=torch.float64),
    OptimCase.per_group("lr per group", {"lr": 0.1}, [{"lr": 0.05}, {"lr": 0.2}], {"lr": 0.02}),
    OptimCase.long_run("long run", lr=0.01),
]


@exercise("03.1", "Plain SGD as an Optimizer subclass", reference=SGD, library=[torch.optim.SGD], hints=[
    ("Two methods. __init__ passes params and a dict of defaults, {'lr': lr}, to "
    "super().__init__. step(closure=None) calls the closure (if any) inside "
    "torch.enable_grad(), updates every parameter, and returns the closure's loss."),
    ("Decorate step with @torch.no_grad(). Loop `for group in self.param_groups:` and "
    "`for p in group['params']:`; skip p whose p.grad is None; read the learning rate "
    "from group['lr'] (each group may have its own)."),
    "The update itself is one in-place line: p.add_(p.grad, alpha=-group['lr']).",
])
def check_plain_sgd(candidate):
    verified = compare_optimizer(candidate, torch.optim.SGD, PLAIN_CASES, steps=5,
                                 mistakes={UPHILL: _Uphill})
    _closure_through_autograd(candidate)
    return verified + "; and a closure that really calls backward()"


DECAY_MISTAKES = {
    "weight decay with the wrong sign: it must add λ·p to the gradient (pull weights toward "
    "zero), g = grad + weight_decay * p": _DecayWrongSign,
    "your decay shrinks p by (1 − λ) without the learning rate: SGD adds λ·p to the gradient, "
    "so the decay is scaled by lr too, p ← p − lr·(g + λ·p)": _DecayWithoutLr,
    "you multiplied the gradient by λ; weight decay adds λ times the *weights*: "
    "g = grad + weight_decay * p": _DecayOfGradient,
    UPHILL: _Uphill,
}


@exercise("03.2", "Weight decay", reference=SGD, library=[torch.optim.SGD], hints=[
    ("Weight decay is the gradient of the L2 penalty (λ/2)·‖p‖², which is λ·p: add it to "
    "the gradient before the update."),
    ("Read λ from group['weight_decay']. Build a new tensor (g = grad + λ·p) rather than "
    "changing grad in place: grad *is* p.grad, which belongs to the caller."),
    "g = grad + group['weight_decay'] * p, then p.add_(g, alpha=-group['lr']).",
])
def check_weight_decay(candidate):
    return compare_optimizer(candidate, torch.optim.SGD, [
        OptimCase("no decay", lr=0.1),
        OptimCase("decay", lr=0.1, weight_decay=0.1),
        OptimCase("strong decay, grad None", lr=0.05, weight_decay=0.5, grad_none={0: [1, 2]}),
        OptimCase("two param groups", lr=0.1, weight_decay=0.1,
                  groups=[{}, {"weight_decay": 0.0, "lr": 0.02}]),
        OptimCase("float64", lr=0.1, weight_decay=0.1, dtype=torch.float64),
        OptimCase.per_group("every hyperparameter per group", {"lr": 0.1, "weight_decay": 0.1},
                            [{"lr": 0.05, "weight_decay": 0.3}, {"lr": 0.2, "weight_decay": 0.0}],
                            {"lr": 0.02, "weight_decay": 0.5}),
        OptimCase.long_run("long run", lr=0.01, weight_decay=0.2),
    ], steps=5, mistakes=DECAY_MISTAKES)


FIRST_STEP_DAMPENED = (
    "your first step is dampened: torch starts the buffer at b₁ = g (no dampening) and "
    "dampens from step 2 on, b ← μ·b + (1 − τ)·g. Starting from zeros gives b₁ = (1 − τ)·g")

MOMENTUM_MISTAKES = {
    FIRST_STEP_DAMPENED: _FirstStepDampened,
    "your buffer does not survive between steps (this is plain SGD): store it in "
    "state['momentum_buffer'] and update that tensor in place": _BufferForgotten,
    "your momentum is one step late: you step along the buffer of the step before and update "
    "it afterwards. Update b first (b ← μ·b + (1 − τ)·g), then step along the new b": (
        _BufferOneStepLate),
    "dampening is used the wrong way round: the new gradient gets weight (1 − τ), "
    "b ← μ·b + (1 − dampening)·g": _DampeningNotOneMinus,
    "weight decay is added after the momentum: add λ·p to the gradient first, so the "
    "decay goes through the buffer too": _DecayAfterMomentum,
    "with momentum = 0 SGD uses no buffer at all (and ignores dampening): only use the "
    "buffer when group['momentum'] != 0": _BufferEvenWithoutMomentum,
    "the buffer is the gradient tensor itself (b = grad without .clone()), so when the "
    "next gradient is written into the same .grad tensor the buffer is overwritten: "
    "start it with grad.clone()": _BufferAliasesGrad,
    "the learning rate is inside your buffer (v ← μ·v + lr·g, p ← p − v): the same numbers "
    "while lr is constant, but torch keeps lr outside the buffer (p ← p − lr·b), so a "
    "scheduler's new lr takes effect at once": _LrInsideBuffer,
}

_MOMENTUM_PER_GROUP = OptimCase.per_group(
    "every hyperparameter per group",
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.1},
    [{"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.0},
     {"lr": 0.2, "momentum": 0.0, "dampening": 0.5, "weight_decay": 0.2}],
    {"lr": 0.02, "momentum": 0.8, "dampening": 0.0, "weight_decay": 0.3})


@exercise("03.3", "Momentum with dampening", reference=SGD, library=[torch.optim.SGD], hints=[
    ("Keep one buffer per parameter in state (the dict self.state[p] that the loop hands you), "
    "under the key 'momentum_buffer'. Everything happens only if group['momentum'] != 0."),
    ("First step (no buffer yet): b = g.clone() — no dampening. Later steps: "
    "b.mul_(μ).add_(g, alpha=1 − τ). Then step along b instead of g."),
    ("g = grad + λ·p; if μ != 0: create or update state['momentum_buffer'] as above and set "
    "g = state['momentum_buffer']; finally p.add_(g, alpha=-lr)."),
])
def check_momentum(candidate):
    return compare_optimizer(candidate, torch.optim.SGD, [
        OptimCase("momentum", lr=0.1, momentum=0.9),
        OptimCase("dampening", lr=0.1, momentum=0.9, dampening=0.5),
        OptimCase("momentum 0", lr=0.1, momentum=0.0, dampening=0.3),
        OptimCase("with weight decay", lr=0.05, momentum=0.8, weight_decay=0.1),
        OptimCase("grad None", lr=0.1, momentum=0.9, dampening=0.2,
                  grad_none={0: [1], 1: [2, 3]}),
        OptimCase("two param groups", lr=0.1, momentum=0.9,
                  groups=[{}, {"momentum": 0.0}, {"momentum": 0.5, "dampening": 0.5}]),
        OptimCase("float64", lr=0.1, momentum=0.9, dampening=0.1, dtype=torch.float64),
        _MOMENTUM_PER_GROUP,
        OptimCase.long_run("long run", lr=0.01, momentum=0.9, dampening=0.1),
    ], steps=6, mistakes=MOMENTUM_MISTAKES)


NO_LOOK_AHEAD = ("your numbers are plain momentum: this is what you get without the "
                 "look-ahead. Nesterov steps along g + μ·b (b already updated), not b")
NESTEROV_MISTAKES = {
    NO_LOOK_AHEAD: _NesterovIgnored,
    "the look-ahead needs the factor μ: g + μ·b, not g + b": _NesterovWithoutMu,
    "μ multiplies the buffer, not the gradient: Nesterov steps along g + μ·b, "
    "not b + μ·g": _NesterovSwapped,
}

_NESTEROV_PER_GROUP = OptimCase.per_group(
    "every hyperparameter per group",
    {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.1, "nesterov": False},
    [{"lr": 0.05, "momentum": 0.8, "dampening": 0.0, "weight_decay": 0.0, "nesterov": True},
     {"lr": 0.2, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.2, "nesterov": False}],
    {"lr": 0.02, "momentum": 0.7, "dampening": 0.0, "weight_decay": 0.3, "nesterov": True})


@exercise("03.4", "Nesterov momentum", reference=SGD, library=[torch.optim.SGD], hints=[
    ("Nesterov changes only the direction you step along, not the buffer: update b exactly "
    "as in 03.3 first."),
    "Plain momentum steps along b. Nesterov looks ahead: it steps along g + μ·b.",
    "After updating b: g = g + μ·b if group['nesterov'] else b; then p.add_(g, alpha=-lr).",
])
def check_nesterov(candidate):
    verified = compare_optimizer(candidate, torch.optim.SGD, [
        OptimCase("nesterov", lr=0.1, momentum=0.9, nesterov=True),
        OptimCase("nesterov=False", lr=0.1, momentum=0.9, dampening=0.3),
        OptimCase("nesterov with weight decay", lr=0.05, momentum=0.8, weight_decay=0.1,
                  nesterov=True),
        OptimCase("grad None", lr=0.1, momentum=0.9, nesterov=True, grad_none={1: [2, 4]}),
        OptimCase("two param groups", lr=0.1, momentum=0.9,
                  groups=[{"nesterov": True}, {"momentum": 0.5}]),
        OptimCase("float64", lr=0.1, momentum=0.9, nesterov=True, dtype=torch.float64),
        _NESTEROV_PER_GROUP,
        OptimCase.long_run("long run", lr=0.01, momentum=0.9, weight_decay=0.1, nesterov=True),
    ], steps=6, mistakes=NESTEROV_MISTAKES)
    _nesterov_validated(candidate)
    return verified + "; nesterov without momentum is refused"


MAXIMIZE_MISTAKES = {
    "maximize=True is ignored: your parameters go downhill. Negate the gradient first, "
    "g = -grad": _MaximizeIgnored,
    "you negated more than the gradient (the whole step, or the gradient after weight "
    "decay): negate grad first, then add λ·p, so weight decay still pulls toward zero": (
        _MaximizeNegatesEverything),
}


@exercise("03.5", "maximize", reference=SGD, library=[torch.optim.SGD], hints=[
    "Maximizing f is minimizing −f, whose gradient is −∇f.",
    ("Negate only the gradient, as the very first thing: weight decay and momentum then "
    "work unchanged. Build a new tensor (-grad); do not negate p.grad in place."),
    "g = -grad if group['maximize'] else grad; the rest of your 03.4 update stays as it is.",
])
def check_maximize(candidate):
    return compare_optimizer(candidate, torch.optim.SGD, [
        OptimCase("maximize", lr=0.1, maximize=True),
        OptimCase("maximize, weight decay", lr=0.1, weight_decay=0.2, maximize=True),
        OptimCase("maximize, nesterov, weight decay", lr=0.05, momentum=0.9, nesterov=True,
                  weight_decay=0.1, maximize=True),
        OptimCase("minimize, dampening", lr=0.1, momentum=0.9, dampening=0.5),
        OptimCase("grad None", lr=0.1, momentum=0.5, maximize=True, grad_none={3: [1, 2]}),
        OptimCase("two param groups", lr=0.1, momentum=0.9, weight_decay=0.1,
                  groups=[{"maximize": True}, {}]),
        OptimCase("float64", lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True,
                  dtype=torch.float64),
        OptimCase.per_group(
            "every hyperparameter per group",
            {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.1,
             "nesterov": False, "maximize": False},
            [{"lr": 0.05, "momentum": 0.8, "dampening": 0.0, "weight_decay": 0.0,
              "nesterov": True, "maximize": True},
             {"lr": 0.2, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.2,
              "nesterov": False, "maximize": False}],
            {"lr": 0.02, "momentum": 0.7, "dampening": 0.0, "weight_decay": 0.3,
             "nesterov": True, "maximize": True}),
        OptimCase.long_run("long run", lr=0.01, momentum=0.9, weight_decay=0.1, nesterov=True, maximize=True),
    ], steps=6, mistakes=MAXIMIZE_MISTAKES)
