"""Notebook 04, adaptive optimizers: Adagrad, RMSprop, Adam, AdamW and AMSGrad.

Every checker steps the learner's optimizer class next to its ``torch.optim``
twin on seeded parameters and gradients (``compare_optimizer``) and, on the
first difference, replays the typical wrong versions below to name the
mistake. ``compare_optimizer`` also compares ``optimizer.state`` with torch's:
the later cells of the notebook (and ``state_dict()``) rely on torch's keys.

The wrong versions are written as one correct update per algorithm with
switches for the mistakes (``_adagrad(…, eps_inside=True)``); the tests feed
them back to the checkers.
"""

import math

import torch

from helpers.checking import Mismatch, exercise
from helpers.checking_tools import OptimCase, compare_optimizer
from helpers.optim import Adagrad, Adam, AdamW, RMSprop

from ._per_parameter import PerParameter

# --------------------------------------------------------------------------
# The notebook's loop: step() calls update(p, grad, state, group) for every
# parameter that has a gradient. One constructor per exercise, as in the notebook.
# --------------------------------------------------------------------------


class _Adagrad(PerParameter):
    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value,
                                  "eps": eps, "maximize": maximize})


class _RMSprop(PerParameter):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, centered=False,
                 *, maximize=False):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps,
                                  "weight_decay": weight_decay, "centered": centered,
                                  "maximize": maximize})


class _Adam(PerParameter):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 *, maximize=False):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay, "maximize": maximize})


class _AdamW(PerParameter):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad,
                                  "maximize": maximize})


def _wrong(base, update, **mistake):
    """A subclass of ``base`` whose update is ``update(…, **mistake)``."""
    name = base.__name__ + "(" + ", ".join(f"{k}={v}" for k, v in mistake.items()) + ")"
    return type(name, (base,), {"update": lambda self, p, grad, state, group:
                                update(p, grad, state, group, defaults=self.defaults, **mistake)})


def _count(state):
    state["step"] = state.get("step", 0) + 1
    return state["step"]


def _gradient(p, grad, group):
    g = -grad if group["maximize"] else grad
    return g + group["weight_decay"] * p


# --------------------------------------------------------------------------
# Adagrad
# --------------------------------------------------------------------------


def _adagrad(p, grad, state, group, *, defaults, eps_inside=False, decay_from_step_1=False,
             counter_lags=False, lr_decay_compounded=False, lr_decay_ignored=False,
             sum_starts_at_0=False, decay_after_sum=False, start_of_group=False):
    if not state:  # torch starts every sum at the constructor's value
        start = group if start_of_group else defaults
        start = 0 if sum_starts_at_0 else start["initial_accumulator_value"]
        state["sum"] = torch.full_like(p, start)
    t = _count(state) - counter_lags
    g = _gradient(p, grad, group)
    state["sum"].add_((grad if decay_after_sum else g) ** 2)
    eta = group["lr_decay"]
    if lr_decay_ignored:
        lr = group["lr"]
    elif lr_decay_compounded:
        lr = group["lr"] / (1 + eta) ** (t - 1)
    else:
        lr = group["lr"] / (1 + (t - (not decay_from_step_1)) * eta)
    s = state["sum"]
    denom = (s + group["eps"]).sqrt() if eps_inside else s.sqrt() + group["eps"]
    p.add_(g / denom, alpha=-lr)


EPS_INSIDE = ("you added eps inside the square root, √(s + ε); torch adds it to the root, "
              "√s + ε (the difference shows when ε is large)")
ADAGRAD_MISTAKES = {
    EPS_INSIDE: _wrong(_Adagrad, _adagrad, eps_inside=True),
    "your lr decay starts one step early: at step t torch uses lr / (1 + (t − 1)·lr_decay), "
    "so the first step (t = 1) has the full lr": _wrong(_Adagrad, _adagrad, decay_from_step_1=True),
    "your step counter lags one step behind (it starts at 0, or is read before it is "
    "incremented): count t = 1 on a parameter's first step, then use "
    "lr / (1 + (t − 1)·lr_decay)": _wrong(_Adagrad, _adagrad, counter_lags=True),
    "your lr decay compounds, lr / (1 + lr_decay)^(t − 1); Adagrad's decays like 1/t: "
    "lr / (1 + (t − 1)·lr_decay)": _wrong(_Adagrad, _adagrad, lr_decay_compounded=True),
    "lr_decay is ignored: the step size at step t is lr / (1 + (t − 1)·lr_decay)": (
        _wrong(_Adagrad, _adagrad, lr_decay_ignored=True)),
    "your sum starts at 0: start it at the constructor's initial_accumulator_value, "
    "torch.full_like(p, self.defaults['initial_accumulator_value'])": (
        _wrong(_Adagrad, _adagrad, sum_starts_at_0=True)),
    "your sum starts at the group's initial_accumulator_value: torch starts every sum at the "
    "constructor's, self.defaults['initial_accumulator_value'], even in a group that sets its "
    "own": _wrong(_Adagrad, _adagrad, start_of_group=True),
    "you accumulated the squares of the raw gradient: add weight decay (and the sign of "
    "maximize) to g first, then s ← s + g²": _wrong(_Adagrad, _adagrad, decay_after_sum=True),
}


ADAGRAD_CASES = [
    OptimCase("first steps", lr=0.1),
    OptimCase("default settings"),
    OptimCase("lr_decay", lr=0.1, lr_decay=0.5),
    OptimCase("weight decay, initial accumulator", lr=0.1, weight_decay=0.1,
              initial_accumulator_value=0.5),
    OptimCase("large eps", lr=0.1, eps=0.1),
    OptimCase("maximize", lr=0.1, weight_decay=0.1, maximize=True),
    OptimCase("grad None", lr=0.1, lr_decay=0.2, grad_none={1: [1, 2], 2: [3]}),
    OptimCase("two param groups", lr=0.1, groups=[{}, {"lr": 0.01, "lr_decay": 0.3}]),
    OptimCase("float64", lr=0.1, lr_decay=0.1, weight_decay=0.1, dtype=torch.float64),
    OptimCase.per_group(
        "every hyperparameter per group",
        {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1, "eps": 1e-10,
         "initial_accumulator_value": 0.5, "maximize": False},
        [{"lr": 0.05, "lr_decay": 0.0, "weight_decay": 0.0, "eps": 0.1,
          "initial_accumulator_value": 0.1, "maximize": True},
         {"lr": 0.2, "lr_decay": 0.3, "weight_decay": 0.2, "eps": 1e-3,
          "initial_accumulator_value": 0.2, "maximize": False}],
        {"lr": 0.02, "lr_decay": 0.5, "weight_decay": 0.3, "eps": 0.01,
         "initial_accumulator_value": 0.3, "maximize": True}),
    OptimCase.long_run("long run", lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1),
]


@exercise("04.1", "Adagrad", reference=Adagrad, library=[torch.optim.Adagrad], hints=[
    ("On a parameter's first update, create its state: state['sum'] = torch.full_like(p, "
     "self.defaults['initial_accumulator_value']) (the constructor's value, as torch) "
     "and a step counter. Every update: count the step, "
     "build g, add g² to the sum, and step."),
    ("g = -grad if maximize else grad, then g = g + weight_decay·p (new tensors, p.grad "
     "stays as it is). The step size is lr / (1 + (t − 1)·lr_decay), with t = 1 on the "
     "first step."),
    ("state['step'] = state.get('step', 0) + 1; t = state['step']; …; "
     "state['sum'].add_(g * g); p.add_(g / (state['sum'].sqrt() + eps), alpha=-clr) with "
     "clr = group['lr'] / (1 + (t - 1) * group['lr_decay'])."),
])
def check_adagrad(candidate):
    verified = _compare(candidate, torch.optim.Adagrad, ADAGRAD_CASES, steps=6,
                        mistakes=ADAGRAD_MISTAKES)
    return verified + "; optimizer.state as torch's"


# --------------------------------------------------------------------------
# RMSprop
# --------------------------------------------------------------------------


def _rmsprop(p, grad, state, group, *, defaults=None, centered_ignored=False, mean_not_squared=False,
             eps_inside=False, alpha_swapped=False, starts_at_first_square=False, stale_mean=False):
    alpha = 1 - group["alpha"] if alpha_swapped else group["alpha"]
    g = _gradient(p, grad, group)
    if not state:
        state["step"] = 0
        state["square_avg"] = torch.zeros_like(p)
        if group["centered"]:
            state["grad_avg"] = torch.zeros_like(p)
    if starts_at_first_square and state["step"] == 0:
        state["square_avg"].copy_(g * g)
    else:
        state["square_avg"].mul_(alpha).add_(g * g, alpha=1 - alpha)
    _count(state)
    v = state["square_avg"]
    if group["centered"] and not centered_ignored:
        mean = state["grad_avg"].clone() if stale_mean else state["grad_avg"]
        state["grad_avg"].mul_(alpha).add_(g, alpha=1 - alpha)
        v = v - (mean.abs() if mean_not_squared else mean * mean)
    eps = group["eps"]
    denom = (v + eps).sqrt() if eps_inside else v.sqrt() + eps
    p.add_(g / denom, alpha=-group["lr"])


RMSPROP_MISTAKES = {
    "centered=True is ignored: subtract the square of the running mean of g, "
    "d = √(v − ḡ²) + ε, with ḡ ← α·ḡ + (1 − α)·g in state['grad_avg']": (
        _wrong(_RMSprop, _rmsprop, centered_ignored=True)),
    "your mean of g is one step old: update ḡ ← α·ḡ + (1 − α)·g first, then subtract its "
    "square, d = √(v − ḡ²) + ε": _wrong(_RMSprop, _rmsprop, stale_mean=True),
    "you subtracted |ḡ| instead of its square: the variance is v − ḡ²": (
        _wrong(_RMSprop, _rmsprop, mean_not_squared=True)),
    EPS_INSIDE.replace("(s + ε)", "(v + ε)").replace("√s", "√v"): (
        _wrong(_RMSprop, _rmsprop, eps_inside=True)),
    "α and 1 − α are swapped: v ← α·v + (1 − α)·g² keeps most of the old average "
    "(α = 0.99 by default)": _wrong(_RMSprop, _rmsprop, alpha_swapped=True),
    "your average starts at the first g² (v₁ = g₁²): torch starts it at 0, so "
    "v₁ = (1 − α)·g₁² and the first steps are larger (RMSprop has no bias correction)": (
        _wrong(_RMSprop, _rmsprop, starts_at_first_square=True)),
}

RMSPROP_CASES = [
    OptimCase("first steps", lr=0.01),
    OptimCase("default settings"),
    OptimCase("alpha 0.9", lr=0.01, alpha=0.9),
    OptimCase("centered", lr=0.01, centered=True),
    OptimCase("large eps", lr=0.01, eps=0.1),
    OptimCase("centered, weight decay, large eps", lr=0.01, alpha=0.9, centered=True,
              weight_decay=0.1, eps=0.1),
    OptimCase("maximize", lr=0.01, weight_decay=0.1, centered=True, maximize=True),
    OptimCase("grad None", lr=0.01, centered=True, grad_none={0: [1], 3: [2, 3]}),
    OptimCase("two param groups", lr=0.01, groups=[{}, {"centered": True, "alpha": 0.9}]),
    OptimCase("float64", lr=0.01, centered=True, dtype=torch.float64),
    OptimCase.per_group(
        "every hyperparameter per group",
        {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.1, "centered": False,
         "maximize": False},
        [{"lr": 0.005, "alpha": 0.9, "eps": 0.1, "weight_decay": 0.0, "centered": True,
          "maximize": True},
         {"lr": 0.02, "alpha": 0.5, "eps": 1e-3, "weight_decay": 0.2, "centered": False,
          "maximize": False}],
        {"lr": 0.03, "alpha": 0.8, "eps": 0.01, "weight_decay": 0.3, "centered": True,
         "maximize": True}),
    OptimCase.long_run("long run", lr=0.01, alpha=0.9, centered=True, weight_decay=0.1),
]


@exercise("04.2", "RMSprop, plain and centered", reference=RMSprop, library=[torch.optim.RMSprop], hints=[
    ("On a parameter's first update, create state['square_avg'] (and, if centered, "
     "state['grad_avg']) with torch.zeros_like(p), and a step counter. Then: "
     "v ← α·v + (1 − α)·g², in place."),
    ("The denominator is d = √v + ε; centered: also ḡ ← α·ḡ + (1 − α)·g, and "
     "d = √(v − ḡ²) + ε. Then p ← p − lr·g/d."),
    ("v = state['square_avg']; v.mul_(alpha).add_(g * g, alpha=1 - alpha); if centered: "
     "m = state['grad_avg']; m.mul_(alpha).add_(g, alpha=1 - alpha); "
     "d = (v - m * m).sqrt() + eps, else d = v.sqrt() + eps; p.add_(g / d, alpha=-lr)."),
])
def check_rmsprop(candidate):
    verified = _compare(candidate, torch.optim.RMSprop, RMSPROP_CASES, steps=6,
                        mistakes=RMSPROP_MISTAKES)
    return verified + "; optimizer.state as torch's"


# --------------------------------------------------------------------------
# Adam, AdamW, AMSGrad: one update, with the mistakes as switches
# --------------------------------------------------------------------------


def _adam(p, grad, state, group, *, defaults=None, decoupled=False, correct_m=True, correct_v=True,
          v_correction_not_rooted=False, eps_inside=False, efficient_form=False,
          counter_from_0=False, betas_swapped=False, corrected_in_place=False,
          decay_without_lr=False, decay_after_step=False, decay_wrong_sign=False,
          amsgrad_of="v", max_overwrites_v=False, float32_step=False, counter_ahead=False,
          l2_too=False):
    beta1, beta2 = group["betas"]
    if betas_swapped:
        beta1, beta2 = 1 - beta1, 1 - beta2
    lr, wd = group["lr"], group["weight_decay"]
    amsgrad = group.get("amsgrad", False)
    if not state:
        state["step"] = torch.tensor(0.0)
        state["exp_avg"] = torch.zeros_like(p)
        state["exp_avg_sq"] = torch.zeros_like(p)
        if amsgrad:
            state["max_exp_avg_sq"] = torch.zeros_like(p)
    state["step"] += 1
    t = state["step"] if float32_step else state["step"].item() - counter_from_0 + counter_ahead
    g = -grad if group["maximize"] else grad
    if not decoupled or l2_too:
        g = g + wd * p
    if decoupled and not decay_after_step:
        p.mul_(1 + lr * wd if decay_wrong_sign else 1 - (wd if decay_without_lr else lr * wd))
    m = state["exp_avg"].mul_(beta1).add_(g, alpha=1 - beta1)
    v = state["exp_avg_sq"].mul_(beta2).add_(g * g, alpha=1 - beta2)
    c1, c2 = 1 - beta1**t, 1 - beta2**t
    if amsgrad and amsgrad_of == "v":
        if max_overwrites_v:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["exp_avg_sq"])
            state["max_exp_avg_sq"].copy_(v)
        else:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
    elif amsgrad and amsgrad_of == "g²":
        v = torch.maximum(state["max_exp_avg_sq"], g * g, out=state["max_exp_avg_sq"])
    elif amsgrad and amsgrad_of == "v̂":
        state["max_exp_avg_sq"] = torch.maximum(state["max_exp_avg_sq"], v / c2)
        v = state["max_exp_avg_sq"] * c2
    if efficient_form:  # Kingma & Ba's "more efficient" order: ε is not corrected
        p.add_(m / (v.sqrt() + group["eps"]), alpha=-lr * math.sqrt(c2) / c1)
    else:
        if corrected_in_place:
            m_hat, v_hat = m.div_(c1), v.div_(c2)
        else:
            m_hat = m / c1 if correct_m else m
            v_hat = v / (c2 if correct_v else 1)
        root = (v_hat + group["eps"]).sqrt() if eps_inside else v_hat.sqrt() + group["eps"]
        if v_correction_not_rooted:
            root = v.sqrt() / c2 + group["eps"]
        p.sub_(lr * m_hat / root)
    if decoupled and decay_after_step:
        p.mul_(1 - lr * wd)


NO_BIAS_CORRECTION = (
    "this is what you get without bias correction: m and v start at 0, so at first they are "
    "too small, and your step 1 is (1 − β₁)/√(1 − β₂) times torch's (3.16× with betas "
    "(0.9, 0.999)). Use m̂ = m / (1 − β₁ᵗ) and v̂ = v / (1 − β₂ᵗ)")
STEP_FROM_0 = (
    "your step counter starts at 0: on the first step 1 − β₁ᵗ = 1 − β₁⁰ = 0, a division by "
    "zero. Increment state['step'] before you use it, so that t = 1 on the first step")
FLOAT32_STEP = (
    "your step counter is a float32 tensor, so βᵗ and 1 − βᵗ are computed in float32 "
    "(1 − 0.999 comes out 1.3e-5 too small there): keep t an int, or read the tensor's "
    "value as a Python number, t = state['step'].item(), as torch does")
ADAM_MISTAKES = {
    NO_BIAS_CORRECTION: _wrong(_Adam, _adam, correct_m=False, correct_v=False),
    "you bias-corrected v but not m: your step 1 is (1 − β₁) times torch's (0.1× with "
    "β₁ = 0.9). Use m̂ = m / (1 − β₁ᵗ)": _wrong(_Adam, _adam, correct_m=False),
    "you bias-corrected m but not v: your step 1 is 1/√(1 − β₂) times torch's (31.6× with "
    "β₂ = 0.999). Use v̂ = v / (1 − β₂ᵗ)": _wrong(_Adam, _adam, correct_v=False),
    "you divided √v by 1 − β₂ᵗ; the correction of the *root* is √(1 − β₂ᵗ): "
    "√v̂ = √v / √(1 − β₂ᵗ)": _wrong(_Adam, _adam, v_correction_not_rooted=True),
    EPS_INSIDE.replace("(s + ε)", "(v̂ + ε)").replace("√s", "√v̂"): (
        _wrong(_Adam, _adam, eps_inside=True)),
    "you used the paper's 'efficient' form, lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m/(√v + ε): there ε "
    "is added before the correction. torch adds ε to the corrected root, "
    "m̂ / (√v̂ + ε)": _wrong(_Adam, _adam, efficient_form=True),
    STEP_FROM_0: _wrong(_Adam, _adam, counter_from_0=True),
    FLOAT32_STEP: _wrong(_Adam, _adam, float32_step=True),
    "your bias correction uses t + 1: on step 1 (the first update) it is 1 − β₁¹ = 1 − β₁, "
    "so count t = 1 on the first step and divide by 1 − βᵗ": _wrong(_Adam, _adam, counter_ahead=True),
    "β and 1 − β are swapped: m ← β₁·m + (1 − β₁)·g keeps most of the old average "
    "(β₁ = 0.9), and likewise v with β₂": _wrong(_Adam, _adam, betas_swapped=True),
    "you bias-corrected exp_avg or exp_avg_sq in place (m.div_(…)): the stored averages "
    "must stay uncorrected, or the next step corrects them again. Compute m̂ = m / (1 − β₁ᵗ) "
    "as a new tensor": _wrong(_Adam, _adam, corrected_in_place=True),
    "your weight decay is decoupled (AdamW's, next exercise): torch.optim.Adam's "
    "weight_decay is the L2 penalty, g ← g + λ·θ before the moments":
        _wrong(_Adam, _adam, decoupled=True),
}

_ADAM_PER_GROUP = (  # constructor, groups, added group: every hyperparameter differs
    {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1, "maximize": False},
    [{"lr": 0.05, "betas": (0.8, 0.9), "eps": 0.1, "weight_decay": 0.0, "maximize": True},
     {"lr": 0.2, "betas": (0.5, 0.99), "eps": 1e-3, "weight_decay": 0.2, "maximize": False}],
    {"lr": 0.02, "betas": (0.7, 0.95), "eps": 0.01, "weight_decay": 0.3, "maximize": True},
)

ADAM_CASES = [
    OptimCase("first steps, default settings"),
    OptimCase("lr 0.1", lr=0.1),
    OptimCase("betas (0.8, 0.9)", lr=0.1, betas=(0.8, 0.9)),
    OptimCase("large eps", lr=0.1, eps=0.1),
    OptimCase("weight decay (L2)", lr=0.1, weight_decay=0.1),
    OptimCase("maximize", lr=0.1, weight_decay=0.1, maximize=True),
    OptimCase("grad None", lr=0.1, grad_none={0: [1, 2], 3: [4]}),
    OptimCase("two param groups", lr=0.1, groups=[{}, {"lr": 0.01, "betas": (0.5, 0.9)}]),
    OptimCase("float64", lr=0.1, weight_decay=0.1, dtype=torch.float64),
    OptimCase.per_group("every hyperparameter per group", *_ADAM_PER_GROUP),
    OptimCase.long_run("long run", lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
]


def _compare(candidate, reference, cases, *, steps, mistakes):
    """compare_optimizer, plus a diagnosis it cannot make: a step counter from 0 with Python
    floats divides by 1 − β₁⁰ = 0.0 and raises ZeroDivisionError on step 1 (tensors give inf)."""
    try:
        return compare_optimizer(candidate, reference, cases, steps=steps, mistakes=mistakes)
    except ZeroDivisionError as error:
        where = getattr(error, "_stepwise_case", "")
        if STEP_FROM_0 not in mistakes or not where.endswith("(step 1)") or "float" not in str(error):
            raise  # not lr / (1 − β⁰), a float divided by 0.0
        raise Mismatch(where, detail=f"your code raised ZeroDivisionError: {error}",
                       cause=STEP_FROM_0) from None


@exercise("04.3", "Adam with bias correction", reference=Adam, library=[torch.optim.Adam], hints=[
    ("On a parameter's first update, create state['step'] = 0, state['exp_avg'] and "
     "state['exp_avg_sq'] (torch.zeros_like(p)). Every update: t += 1 first (t = 1 on the "
     "first step), g = ±grad + λ·p, then update m and v in place."),
    ("m ← β₁·m + (1 − β₁)·g and v ← β₂·v + (1 − β₂)·g². Bias correction: "
     "m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ), as new tensors. Step: "
     "p ← p − lr·m̂ / (√v̂ + ε), with ε outside the root."),
    ("m.mul_(beta1).add_(g, alpha=1 - beta1); v.mul_(beta2).add_(g * g, alpha=1 - beta2); "
     "m_hat = m / (1 - beta1 ** t); v_hat = v / (1 - beta2 ** t); "
     "p.sub_(lr * m_hat / (v_hat.sqrt() + eps))."),
])
def check_adam(candidate):
    verified = _compare(candidate, torch.optim.Adam, ADAM_CASES, steps=6, mistakes=ADAM_MISTAKES)
    return verified + "; optimizer.state as torch's"


L2_NOT_DECOUPLED = (
    "this is Adam's L2 penalty: you added λ·θ to the gradient, so it is divided by √v̂ "
    "like the gradient. AdamW shrinks the weights directly, θ ← θ − lr·λ·θ, and the Adam "
    "step uses the plain gradient")
ADAMW_MISTAKES = {
    L2_NOT_DECOUPLED: _wrong(_AdamW, _adam),
    "your decay is not scaled by the learning rate: torch's AdamW shrinks θ by (1 − lr·λ) "
    "per step, not by (1 − λ)": _wrong(_AdamW, _adam, decoupled=True, decay_without_lr=True),
    "your decay has the wrong sign: θ ← (1 − lr·λ)·θ pulls the weights toward zero": (
        _wrong(_AdamW, _adam, decoupled=True, decay_wrong_sign=True)),
    "you decayed after the Adam step: torch shrinks θ first, θ ← (1 − lr·λ)·θ, then "
    "takes the step": _wrong(_AdamW, _adam, decoupled=True, decay_after_step=True),
    NO_BIAS_CORRECTION: _wrong(_AdamW, _adam, decoupled=True, correct_m=False, correct_v=False),
    FLOAT32_STEP: _wrong(_AdamW, _adam, decoupled=True, float32_step=True),
    "you applied weight decay twice, as L2 (g + λ·θ) and decoupled (θ ← (1 − lr·λ)·θ): AdamW "
    "only shrinks the weights, the Adam step uses the plain gradient": (
        _wrong(_AdamW, _adam, decoupled=True, l2_too=True)),
}

ADAMW_CASES = [
    OptimCase("first steps, decay 0.1", lr=0.1, weight_decay=0.1),
    OptimCase("default settings"),
    OptimCase("strong decay", lr=0.05, weight_decay=0.5),
    OptimCase("no decay", lr=0.1, weight_decay=0.0),
    OptimCase("maximize", lr=0.1, weight_decay=0.1, maximize=True),
    OptimCase("grad None", lr=0.1, weight_decay=0.1, grad_none={1: [1, 2], 2: [4]}),
    OptimCase("two param groups", lr=0.1, weight_decay=0.1,
              groups=[{}, {"weight_decay": 0.0}, {"lr": 0.02, "betas": (0.5, 0.9)}]),
    OptimCase("float64", lr=0.1, weight_decay=0.1, dtype=torch.float64),
    OptimCase.per_group("every hyperparameter per group", *_ADAM_PER_GROUP),
    OptimCase.long_run("long run", lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
]


@exercise("04.4", "AdamW: decoupled weight decay", reference=AdamW,
          library=[torch.optim.AdamW, torch.optim.Adam, Adam], hints=[
    ("Start from your Adam. Only the weight decay moves: it no longer touches g (so it "
     "does not enter m, v or the division by √v̂)."),
    ("Before the Adam step, shrink the weights in place: θ ← (1 − lr·λ)·θ. Then the Adam "
     "step with g = ±grad."),
    "p.mul_(1 - group['lr'] * group['weight_decay']), then your Adam update with g = ±grad.",
])
def check_adamw(candidate):
    verified = _compare(candidate, torch.optim.AdamW, ADAMW_CASES, steps=6,
                        mistakes=ADAMW_MISTAKES)
    return verified + "; optimizer.state as torch's"


AMSGRAD_IGNORED = ("amsgrad=True is ignored: divide by the running maximum of v, "
                   "v_max ← max(v_max, v), kept in state['max_exp_avg_sq']")
AMSGRAD_MISTAKES = {
    AMSGRAD_IGNORED: _wrong(_AdamW, _adam, decoupled=True, amsgrad_of=None),
    "you kept the maximum of the bias-corrected v̂; torch keeps the maximum of the raw v "
    "and corrects afterwards, √v_max / √(1 − β₂ᵗ)": _wrong(_AdamW, _adam, decoupled=True,
                                                         amsgrad_of="v̂"),
    "you stored the maximum in exp_avg_sq itself: v must stay the moving average of g²; "
    "keep the maximum apart, in state['max_exp_avg_sq']": (
        _wrong(_AdamW, _adam, decoupled=True, max_overwrites_v=True)),
    "you took the maximum of g²; AMSGrad's is the maximum of v, the moving average of g²": (
        _wrong(_AdamW, _adam, decoupled=True, amsgrad_of="g²")),
    L2_NOT_DECOUPLED: _wrong(_AdamW, _adam),
}

AMSGRAD_CASES = [
    OptimCase("amsgrad", lr=0.1, amsgrad=True),
    OptimCase("amsgrad=False", lr=0.1, weight_decay=0.1),
    OptimCase("amsgrad, betas (0.5, 0.9)", lr=0.1, betas=(0.5, 0.9), weight_decay=0.1,
              amsgrad=True),
    OptimCase("amsgrad, maximize", lr=0.1, betas=(0.8, 0.9), amsgrad=True, maximize=True),
    OptimCase("grad None", lr=0.1, betas=(0.5, 0.9), amsgrad=True, grad_none={0: [2, 3]}),
    OptimCase("two param groups", lr=0.1, betas=(0.5, 0.9), groups=[{"amsgrad": True}, {}]),
    OptimCase("float64", lr=0.1, betas=(0.5, 0.9), amsgrad=True, dtype=torch.float64),
    OptimCase.per_group(
        "every hyperparameter per group",
        {**_ADAM_PER_GROUP[0], "amsgrad": False},
        [{**_ADAM_PER_GROUP[1][0], "amsgrad": True}, {**_ADAM_PER_GROUP[1][1], "amsgrad": False}],
        {**_ADAM_PER_GROUP[2], "amsgrad": True}),
    OptimCase.long_run("long run", lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True),
]


@exercise("04.5", "AMSGrad", reference=AdamW, library=[torch.optim.AdamW, torch.optim.Adam, Adam], hints=[
    ("Your AdamW, plus one more state tensor when group['amsgrad'] is set: "
     "state['max_exp_avg_sq'], zeros like p."),
    ("After updating v: v_max ← max(v_max, v) elementwise (torch.maximum), stored in "
     "state['max_exp_avg_sq']. Bias-correct and divide by v_max instead of v."),
    ("vmax = state['max_exp_avg_sq']; torch.maximum(vmax, v, out=vmax); then "
     "v_hat = vmax / (1 - beta2 ** t) in place of v / (1 - beta2 ** t)."),
])
def check_amsgrad(candidate):
    verified = _compare(candidate, torch.optim.AdamW, AMSGRAD_CASES, steps=8,
                        mistakes=AMSGRAD_MISTAKES)
    return verified + "; optimizer.state as torch's"

