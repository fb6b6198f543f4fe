"""Notebook 01 (gradients by hand): a gradient-descent step, a training loop, the MSE gradient.

Each checker runs the learner's code on fresh seeded inputs next to the reference
(``helpers.by_hand``) and, on a difference, names the typical mistake whose
known-wrong variant reproduces the learner's answer.
"""

import math
import numbers
from functools import partial

import torch

from helpers import by_hand
from helpers.checking import Mismatch, case, exercise
from helpers.checking_tools import compare_function, expect_close

# --------------------------------------------------------------------------
# 01.1 A gradient-descent step
# --------------------------------------------------------------------------

STEP_MISTAKES = {  # likely cause: the wrong update it reproduces
    "a sign error: the step adds lr·grad (gradient ascent)": lambda p, g, lr: p + lr * g,
    "the learning rate is missing: the step subtracts the whole gradient": lambda p, g, lr: p - g,
}


def _parameters(seed, shapes, dtype=torch.float32, without_grad=()):
    """Leaf tensors that require grad, with random values and random ``.grad``."""
    g = torch.Generator().manual_seed(seed)
    params = []
    for i, shape in enumerate(shapes):
        p = torch.randn(shape, generator=g, dtype=dtype).requires_grad_()
        if i not in without_grad:
            p.grad = torch.randn(shape, generator=g, dtype=dtype)
        params.append(p)
    return params


def _expect_stepped(name, params, before, grads, lr, calls, returned):
    """Compare every parameter with ``before − calls·lr·grad`` and check the contract."""
    if not torch.is_grad_enabled():
        raise Mismatch(
            name,
            cause="your step switched autograd off for good "
            "(torch.set_grad_enabled(False)); use `with torch.no_grad():`",
        )
    for i, (p, start, grad) in enumerate(zip(params, before, grads)):
        what = f"parameter {i}"
        if not (p.is_leaf and p.requires_grad and p.grad_fn is None):
            raise Mismatch(
                name,
                detail=f"{what}: is_leaf={p.is_leaf}, requires_grad="
                f"{p.requires_grad}, grad_fn={type(p.grad_fn).__name__}",
                cause="after the step a parameter must still be a leaf that requires "
                "grad: update under torch.no_grad(), without detach() or "
                "requires_grad_(False)",
            )
        if grad is None:
            if p.grad is not None or not torch.equal(p.detach(), start):
                raise Mismatch(
                    name,
                    start,
                    p,
                    detail=f"{what} has .grad None",
                    cause="a parameter whose .grad is None took no part in the loss: "
                    "leave it unchanged (skip it)",
                )
            continue
        expected = start - calls * lr * grad
        if torch.equal(p.detach(), start):
            cause = (
                "the parameters did not change: `p = p - lr * p.grad` only rebinds the "
                "loop variable; update in place with `p -= …` under torch.no_grad()"
            )
            if returned is not None:
                cause += " (your function returned something: it should update, not return)"
            raise Mismatch(name, expected, p, detail=f"{what} did not change", cause=cause)
        try:
            expect_close(name, expected, p.detach(), what=what)
        except Mismatch as mismatch:
            if calls == 1:
                mismatch.cause = next(
                    (
                        cause
                        for cause, wrong in STEP_MISTAKES.items()
                        if torch.allclose(wrong(start, grad, lr), p.detach())
                    ),
                    mismatch.cause,
                )
            raise
        if p.grad is None or not torch.equal(p.grad, grad):
            raise Mismatch(
                name,
                grad,
                p.grad,
                detail=f"{what}.grad changed",
                cause="your step reset (or changed) the gradients; by the contract "
                "it leaves them alone: resetting is the training loop's job",
            )


def _step_case(candidate, name, params, lr, calls=1):
    before = [p.detach().clone() for p in params]
    grads = [None if p.grad is None else p.grad.clone() for p in params]
    with case(name):
        for _ in range(calls):
            returned = candidate(params, lr)
    _expect_stepped(name, params, before, grads, lr, calls, returned)


@exercise(
    "01.1",
    "A gradient-descent step",
    reference=by_hand.gd_step,
    hints=[
        (
            "Loop over the parameters; for each one with a gradient, move it against the gradient, "
            "scaled by lr. Autograd must not record this: it is not part of the model."
        ),
        (
            "In place means `p -= …` (or `p.sub_(…)`), not `p = p - …`, which only rebinds the loop "
            "variable. In-place changes of a leaf need `with torch.no_grad():` around the loop."
        ),
        (
            "with torch.no_grad():\n    for p in params:\n        if p.grad is not None:\n"
            "            p -= lr * p.grad"
        ),
    ],
)
def check_gd_step(candidate):
    _step_case(candidate, "lr=0.1, a vector and a matrix", _parameters(1, [(3,), (2, 2)]), lr=0.1)
    _step_case(
        candidate,
        "lr=0.5, the second parameter has .grad None",
        _parameters(2, [(3,), (2,), (1,)], without_grad=(1,)),
        lr=0.5,
    )
    _step_case(
        candidate,
        "float64, lr=0.01, two steps in a row",
        _parameters(3, [(4,), (2, 3)], dtype=torch.float64),
        lr=0.01,
        calls=2,
    )
    return (
        "3 cases: in place, same tensors, .grad None skipped, gradients kept, "
        "parameters still leaves (no graph recorded)"
    )


# --------------------------------------------------------------------------
# 01.2 The training loop
# --------------------------------------------------------------------------

FIT_TOLERANCE = 1e-3  # |w − w_ls|, |b − b_ls| after 300 steps with lr = 0.1 (stated in the notebook)


def _flawed_fit(x, y, lr, steps, *, reset=True, reset_late=False, ascent=False, log_after=False):
    """``by_hand.fit_line`` with one typical flaw switched on (to name the learner's mistake)."""
    w = torch.zeros((), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    losses = []
    for _ in range(steps):
        loss = by_hand.mse(w, b, x, y)
        if reset:
            by_hand.zero_grads([w, b])
        loss.backward()
        if reset_late:
            by_hand.zero_grads([w, b])
        by_hand.gd_step([w, b], -lr if ascent else lr)
        losses.append(by_hand.mse(w, b, x, y).item() if log_after else loss.item())
    return w, b, losses


FIT_MISTAKES = {
    "the gradients are never reset, so every step uses the sum of all past gradients: "
    "reset w.grad and b.grad before each backward()": partial(_flawed_fit, reset=False),
    "a sign error: the update adds lr·grad (gradient ascent)": partial(_flawed_fit, ascent=True),
    "the gradients are reset between backward() and the update, so the update sees no gradient: "
    "reset before backward()": partial(_flawed_fit, reset_late=True),
    "losses[k] is the loss after update k; record loss.item() of the loss you called backward() on": partial(
        _flawed_fit, log_after=True
    ),
    "the lr argument is ignored (a learning rate fixed inside the loop?)": lambda x, y, lr, steps: (
        by_hand.fit_line(x, y, 0.1, steps)
    ),
}


def _run_fit(candidate, name, x, y, lr, steps):
    """Call the candidate; check the shape of its answer; return (w, b, losses) as floats."""
    with case(name):
        try:
            answer = candidate(x, y, lr, steps)
        except TypeError as error:
            if "NoneType" not in str(error):
                raise
            raise Mismatch(
                name,
                detail=f"your code raised TypeError: {error}",
                cause="w.grad or b.grad was None: after `w = w - lr * w.grad` w is a "
                "new tensor, not a leaf, and backward() fills .grad only on "
                "leaves. Update in place under torch.no_grad() (gd_step does)",
            ) from None
    if not (isinstance(answer, (tuple, list)) and len(answer) == 3):
        raise Mismatch(name, "(w, b, losses)", answer, cause="return the three values w, b, losses")
    w, b, losses = answer
    for label, value in (("w", w), ("b", b)):
        if not (isinstance(value, torch.Tensor) and value.numel() == 1):
            raise Mismatch(
                name,
                f"{label}: a one-element tensor",
                value,
                cause=f"return the parameter tensor {label} itself",
            )
    if not isinstance(losses, list) or len(losses) != steps:
        raise Mismatch(
            name, f"a list of {steps} losses", losses, cause="append one loss per step, before the update"
        )
    if not all(isinstance(v, numbers.Real) for v in losses):
        raise Mismatch(
            name,
            "floats",
            losses[0],
            cause="append loss.item(), a float; the loss tensor keeps its whole graph alive",
        )
    return w.detach().item(), b.detach().item(), [float(v) for v in losses]


def _same_run(a, b, rtol=1e-4, atol=1e-6):
    (wa, ba, la), (wb, bb, lb) = a, b
    return torch.allclose(
        torch.tensor([wa, ba, *la]), torch.tensor([wb, bb, *lb]), rtol=rtol, atol=atol, equal_nan=True
    )


def _close(a, b):
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def _fit_cause(x, y, lr, steps, got, first_bad):
    """The likely mistake behind the candidate's run ``got`` (w, b, losses), or None."""
    for description, wrong in FIT_MISTAKES.items():
        w, b, losses = wrong(x, y, lr, steps)
        if _same_run((w.item(), b.item(), losses), got):
            return description
    losses = got[2]
    if not losses[-1] < losses[0]:  # also for NaN
        return (
            "the loss grows (or is NaN) although this lr is small enough to converge: the update "
            "overshoots or climbs. Check the sign, that you use the lr argument as given, and that "
            "the gradients are reset before each backward()"
        )
    if first_bad == 0:
        return (
            "losses[0] is the loss at the start: begin from w = b = 0 "
            "(torch.zeros((), requires_grad=True)) and record each loss before its update"
        )
    if first_bad == 1:
        return "the start is right but the first update is not: update with p − lr·p.grad, using lr as given"
    if first_bad is not None:
        return "the first update is right but a later one is not: does something change between steps?"
    return "every loss matches but the final w, b do not: return the parameters after the last update"


def _fit_case(candidate, name, seed, lr, steps):
    """The candidate's first ``steps`` steps must match the reference, step by step."""
    x, y = by_hand.noisy_line(n=50, seed=seed)
    got = _run_fit(candidate, name, x, y, lr, steps)
    w, b, losses = by_hand.fit_line(x, y, lr, steps)
    expected = (w.item(), b.item(), losses)
    if _same_run(expected, got):
        return
    first_bad = next((k for k, (e, g) in enumerate(zip(losses, got[2])) if not _close(e, g)), None)
    cause = _fit_cause(x, y, lr, steps, got, first_bad)
    if first_bad is not None:
        raise Mismatch(
            name,
            losses[first_bad],
            got[2][first_bad],
            step=first_bad,
            detail=f"losses[{first_bad}] differs",
            cause=cause,
        )
    raise Mismatch(name, expected[:2], got[:2], detail=f"(w, b) after {steps} steps differ", cause=cause)


@exercise(
    "01.2",
    "The training loop",
    reference=by_hand.fit_line,
    hints=[
        (
            "Before the loop: w, b = torch.zeros((), requires_grad=True) each, and losses = []. "
            "Inside `for _ in range(steps):` do the four numbered moves, then append loss.item()."
        ),
        (
            "Reset with `w.grad = None` and `b.grad = None` (or zero_() them) before backward(): "
            "otherwise backward() adds to the previous step's gradients."
        ),
        (
            "for _ in range(steps):\n    loss = mse(w, b, x, y)\n    w.grad = b.grad = None\n"
            "    loss.backward()\n    gd_step([w, b], lr)\n    losses.append(loss.item())"
        ),
    ],
)
def check_fit_line(candidate):
    _fit_case(candidate, "seed=1, lr=0.1: the first 5 steps", seed=1, lr=0.1, steps=5)
    _fit_case(candidate, "seed=2, lr=0.05: the first 5 steps", seed=2, lr=0.05, steps=5)
    name = "seed=3, lr=0.1, 300 steps: the fitted line"
    x, y = by_hand.noisy_line(seed=3)
    w, b, _ = _run_fit(candidate, name, x, y, 0.1, 300)
    best = torch.stack(by_hand.least_squares(x, y))
    expect_close(name, best, torch.tensor([w, b]), what="(w, b)", rtol=0, atol=FIT_TOLERANCE)
    return (
        f"3 cases: first steps match gradient descent step by step; after 300 steps "
        f"(w, b) = ({w:.4f}, {b:.4f}), within {FIT_TOLERANCE:g} of least squares"
    )


# --------------------------------------------------------------------------
# 01.3 The gradient of the MSE, by hand
# --------------------------------------------------------------------------


def autograd_mse_grads(w, b, x, y):
    """What the learner's formula is compared with: autograd's gradient of ``by_hand.mse``."""
    w, b = w.detach().requires_grad_(), b.detach().requires_grad_()
    with torch.enable_grad():
        return torch.autograd.grad(by_hand.mse(w, b, x, y), (w, b))


# Typical wrong gradients, written with the residual r = w·x + b − y: cause -> (r, x) -> (dw, db).
_WRONG_GRADS = {
    "the factor 2 from the square is missing": lambda r, x: ((r * x).mean(), r.mean()),
    "a sum instead of a mean: the 1/n of the mean is missing": lambda r, x: (2 * (r * x).sum(), 2 * r.sum()),
    "a sign error: the residual is y − (w·x + b); it should be (w·x + b) − y": lambda r, x: (
        -2 * (r * x).mean(),
        -2 * r.mean(),
    ),
    "dL/dw is missing the factor x_i inside the mean (the chain rule: ∂r_i/∂w = x_i)": lambda r, x: (
        2 * r.mean(),
        2 * r.mean(),
    ),
    "dL/dw multiplies the means, 2·mean(r)·mean(x), instead of taking the mean of the "
    "products, 2·mean(r·x)": lambda r, x: (2 * r.mean() * x.mean(), 2 * r.mean()),
    "the two gradients are swapped: return (dL/dw, dL/db)": lambda r, x: (2 * r.mean(), 2 * (r * x).mean()),
}
GRAD_MISTAKES = {
    cause: lambda w, b, x, y, wrong=wrong: wrong(w * x + b - y, x) for cause, wrong in _WRONG_GRADS.items()
}


def _grad_case(seed, n, w, b):
    x, y = by_hand.noisy_line(n=n, seed=seed)
    f64 = {"dtype": torch.float64}
    return (torch.tensor(w, **f64), torch.tensor(b, **f64), x.to(**f64), y.to(**f64))


def _by_formula(candidate, name):
    """The candidate, with autograd reported as not allowed."""
    cause = "compute the gradient with the formula (tensor arithmetic), not with autograd"

    def run(w, b, x, y):
        try:
            answer = candidate(w, b, x, y)
        except RuntimeError as error:
            if "does not require grad" not in str(error):
                raise
            raise Mismatch(
                name,
                detail=f"your code raised RuntimeError: {error}",
                cause="w and b do not require grad here: " + cause,
            ) from None
        if w.requires_grad or b.requires_grad:
            raise Mismatch(name, detail="your code made w or b require grad", cause=cause)
        return answer

    return run


@exercise(
    "01.3",
    "The gradient of the MSE, by hand",
    reference=by_hand.mse_grads,
    hints=[
        (
            "Write r_i = w·x_i + b − y_i, so L = (1/n)·Σ r_i². Differentiate r_i² with the chain "
            "rule: ∂(r_i²)/∂w = 2·r_i·∂r_i/∂w. What are ∂r_i/∂w and ∂r_i/∂b?"
        ),
        (
            "∂r_i/∂w = x_i and ∂r_i/∂b = 1, so dL/dw = (2/n)·Σ r_i·x_i and dL/db = (2/n)·Σ r_i. "
            "With tensors, (1/n)·Σ is .mean()."
        ),
        "r = w * x + b - y\nreturn 2 * (r * x).mean(), 2 * r.mean()",
    ],
)
def check_mse_grads(candidate):
    cases = {
        "w=0, b=0, 5 points (seed=1)": _grad_case(1, 5, 0.0, 0.0),
        "w=2.5, b=-1, 8 points (seed=2)": _grad_case(2, 8, 2.5, -1.0),
        "w=-1, b=4, 20 points (seed=3)": _grad_case(3, 20, -1.0, 4.0),
    }
    for name, args in cases.items():
        compare_function(
            _by_formula(candidate, name),
            autograd_mse_grads,
            {name: args},
            mistakes=GRAD_MISTAKES,
            what="(dL/dw, dL/db)",
        )
    return "3 cases: (dL/dw, dL/db) equal autograd's in float64; " + "; ".join(cases)
