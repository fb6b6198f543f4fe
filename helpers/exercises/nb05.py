"""Notebook 05, optimizer playground: a surface of your own, and hyperparameters that work.

05.1 compares the learner's Beale surface with the reference below (values on
single points and on a grid, autograd gradients, the minimum). 05.2 and 05.3 run
the learner's hyperparameters with ``helpers.optim`` on a surface and check where
the run ends; on failure the message says how close it got, whether it diverged
or zig-zagged, and which hyperparameter is the likely cause.
"""

import numbers

import torch

from helpers import optim
from helpers.checking import Mismatch, case, exercise, hidden_pass
from helpers.checking_tools import expect_close
from helpers.playground import Outcome
from helpers.surfaces import RAVINE, ROSENBROCK, Surface, trajectory

# --------------------------------------------------------------------------
# 05.1 — Beale's function as a Surface
# --------------------------------------------------------------------------

BEALE_MINIMUM = (3.0, 0.5)


def beale(x, y):
    """Beale's function: (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²."""
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def beale_surface():
    """Beale's function as a Surface, with its one global minimum."""
    return Surface("Beale", beale, minima=(BEALE_MINIMUM,), start=(1.0, 1.5), xlim=(-1.0, 4.5),
                   ylim=(-1.5, 2.0))


BEALE_MISTAKES = {
    "a sign inside a square: each term is (c − x + x·yᵏ), with c = 1.5, 2.25, 2.625":
        lambda x, y: (1.5 + x - x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2,
    "the powers of y are 1, 2, 3 in the three terms (x·y, x·y², x·y³)":
        lambda x, y: (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**3) ** 2 + (2.625 - x + x * y**2) ** 2,
    "the terms are squared before they are added: (…)² + (…)² + (…)²":
        lambda x, y: ((1.5 - x + x * y) + (2.25 - x + x * y**2) + (2.625 - x + x * y**3)) ** 2,
    "x and y are swapped":
        lambda x, y: beale(y, x),
    "the powers apply to y alone: x·y², not (x·y)²":
        lambda x, y: ((1.5 - x + x * y) ** 2 + (2.25 - x + (x * y) ** 2) ** 2
                      + (2.625 - x + (x * y) ** 3) ** 2),
}
BEALE_ATTRIBUTES = {"name": "Beale", "start": (1.0, 1.5), "xlim": (-1.0, 4.5), "ylim": (-1.5, 2.0)}

POINTS = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 0.5], [-1.0, 2.0], [2.5, -1.0], [0.3, 0.7]],
                      dtype=torch.float64)


def _same(a, b):
    return (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
            and torch.allclose(a, b, rtol=1e-9, atol=1e-12))


def _value_cause(got_fn, points):
    x, y = points.unbind(-1)
    got = got_fn(x, y)
    return next((why for why, wrong in BEALE_MISTAKES.items() if _same(wrong(x, y), got)), None)


@exercise("05.1", "Beale's function as a Surface", reference=beale_surface, hints=[
    "Write beale(x, y) with torch operations only (+, −, *, **): no math.*, .item(), float() or "
    "numpy, so that it works on tensors of any shape and autograd can differentiate it.",
    "Each of the three terms is (c − x + x·yᵏ)², with (c, k) = (1.5, 1), (2.25, 2), (2.625, 3). The "
    "minimum is where all three brackets are 0 at once.",
    "return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2; "
    "and the minimum is (3.0, 0.5): 1.5 − 3 + 1.5 = 0, 2.25 − 3 + 0.75 = 0, 2.625 − 3 + 0.375 = 0.",
])
def check_beale(candidate):
    with case("calling beale_surface()"):
        surface = candidate()
    if not isinstance(surface, Surface):
        raise Mismatch("beale_surface()", "a Surface", surface,
                       cause="return the Surface(...) the cell builds"
                             + (" (did you forget `return`?)" if surface is None else ""))
    reference = beale_surface()
    if hidden_pass():  # issue 15, grading: other points, in a batch of another shape
        _expect_beale_at_other_points(surface, reference)
        return None

    name = f"values at {len(POINTS)} points (x, y), float64"
    with case(name):
        got = surface(POINTS.clone())
    mistake = _value_cause(surface.f, POINTS) if isinstance(got, torch.Tensor) else None
    expect_close(name, reference(POINTS), got, what="f", rtol=0, atol=float("inf"))  # kind, shape, dtype
    for point, e, g in zip(POINTS.tolist(), reference(POINTS), got):
        if not torch.isclose(e, g, rtol=1e-7, atol=1e-9):
            raise Mismatch(name, f"{e.item():.6g}", f"{g.item():.6g}",
                           detail=f"f({point[0]:g}, {point[1]:g}) differs", cause=mistake)

    grid = torch.stack(torch.meshgrid(torch.linspace(-1, 4, 4), torch.linspace(-1, 2, 3), indexing="ij"), -1)
    name = "a 4×3 grid of points, float32 (as a contour plot evaluates it)"
    with case(name):
        got = surface(grid.clone())
    expect_close(name, reference(grid), got, what="f on the grid")

    name = f"autograd gradients at {len(POINTS)} points"
    xy = POINTS.clone().requires_grad_()
    with case(name):
        loss = surface(xy).sum()
    if not loss.requires_grad:
        raise Mismatch(name, "a result autograd can differentiate", "a result with no gradient",
                       cause="your function cuts the autograd graph: build it from torch operations "
                             "on x and y, without .item(), float(), torch.tensor(...) or numpy")
    with case(name):
        loss.backward()
    points = POINTS.clone().requires_grad_()
    (expected,) = torch.autograd.grad(reference(points).sum(), points)
    expect_close(name, expected, xy.grad, what="∇f")

    name = "the attributes"
    for attribute, expected in BEALE_ATTRIBUTES.items():
        got = getattr(surface, attribute)
        if not _same_attribute(expected, got):
            raise Mismatch(name, expected, got, detail=f"surface.{attribute}",
                           cause="copy name, start, xlim and ylim from the docstring: the plots and the "
                                 "runs below start from them")

    name = "the minimum"
    minima = _points(surface.minima)
    if minima is None:
        raise Mismatch(name, "((x, y),): a tuple of points", surface.minima,
                       cause="minima holds points: one pair (x, y) inside a tuple, ((x, y),)")
    if len(minima) != 1:
        raise Mismatch(name, "one point (x, y)", f"{len(minima)} points",
                       cause="Beale's function has exactly one global minimum")
    point = torch.tensor(minima[0], dtype=torch.float64, requires_grad=True)
    value = reference(point)
    (gradient,) = torch.autograd.grad(value, point)
    if value.item() > 1e-12 or gradient.norm() > 1e-9:
        cause = None
        if minima[0] == BEALE_MINIMUM[::-1]:
            cause = "x and y are swapped: the minimum is (x, y), with x first"
        elif minima[0] == (1.0, 1.0):
            cause = "(1, 1) is Rosenbrock's minimum, not Beale's"
        raise Mismatch(name, "f = 0 and ∇f = (0, 0) there (a sum of squares is ≥ 0)",
                       f"f{minima[0]} = {value.item():.4g}, ∇f = ({gradient[0]:.4g}, {gradient[1]:.4g})",
                       cause=cause or "at the minimum all three brackets (c − x + x·yᵏ) are 0 at once")
    return (f"values at {len(POINTS)} points and on a float32 grid, autograd gradients, name, start "
            "and limits as given, and f = 0, ∇f = 0 at your minimum")


def _expect_beale_at_other_points(surface, reference):
    generator = torch.Generator().manual_seed(15)
    low, high = torch.tensor([-1.0, -1.5], dtype=torch.float64), torch.tensor([4.5, 2.0], dtype=torch.float64)
    points = low + (high - low) * torch.rand(2, 4, 2, generator=generator, dtype=torch.float64)
    name = "hidden: values and gradients at 8 other points, a 2×4 batch of (x, y), float64"
    xy = points.clone().requires_grad_()
    with case(name):
        got = surface(xy)
    expect_close(name, reference(points), got, what="f", rtol=1e-7, atol=1e-9)
    if not got.requires_grad:
        raise Mismatch(name, "a result autograd can differentiate", "a result with no gradient")
    with case(name):
        got.sum().backward()
    points.requires_grad_()
    (expected,) = torch.autograd.grad(reference(points).sum(), points)
    expect_close(name, expected, xy.grad, what="∇f")


def _same_attribute(expected, got):
    if isinstance(expected, str):
        return got == expected
    try:
        return len(got) == len(expected) and all(float(g) == e for g, e in zip(got, expected))
    except (TypeError, ValueError):
        return False


def _points(minima):
    """``minima`` as a tuple of (x, y) float pairs, or None if it is not one."""
    try:
        points = tuple(tuple(float(v) for v in m) for m in minima)
    except (TypeError, ValueError):
        return None
    return points if all(len(p) == 2 for p in points) else None


# --------------------------------------------------------------------------
# 05.2, 05.3 — hyperparameters that reach the minimum
# --------------------------------------------------------------------------


def _settings(candidate, allowed, label):
    """The learner's dict of constructor arguments, after checking its keys."""
    with case("calling your function"):
        settings = candidate()
    example = "{" + ", ".join(f'"{k}": …' for k in allowed) + "}"
    if not isinstance(settings, dict):
        raise Mismatch(label, f"a dict {example}", settings,
                       cause="return the keyword arguments as a dict"
                             + (" (did you forget `return`?)" if settings is None else ""))
    missing = [k for k in allowed if k not in settings]
    extra = [k for k in settings if k not in allowed]
    if missing or extra:
        raise Mismatch(label, f"the keys {list(allowed)}", f"the keys {list(settings)}",
                       cause="this exercise is about " + " and ".join(allowed)
                             + (f"; add {missing}" if missing else "")
                             + (f"; leave out {extra}" if extra else ""))
    for key in allowed:
        value = settings[key]
        values = value if key == "betas" and isinstance(value, (tuple, list)) else [value]
        bad = [v for v in values if not isinstance(v, numbers.Real) or isinstance(v, bool)]
        if bad:
            raise Mismatch(label, f"{key}: numbers", value,
                           cause=f"give {key} as numbers (like 0.1), "
                                 f"not as {type(bad[0]).__name__} {bad[0]!r}")
    return settings


def _run(surface, make, steps, label):
    with case(label):
        path = trajectory(surface, make, steps, dtype=torch.float64)
    return Outcome.of(surface, path, steps)


def _expect_it_stays(surface, make, steps, eps, label):
    """Issue 15, grading: the run goes on for as many steps again and stays within ``eps``."""
    label = f"hidden: {label}, run on to {2 * steps} steps"
    outcome = _run(surface, make, 2 * steps, label)
    worst = float("inf") if outcome.diverged_at is not None else max(outcome.distances[steps:])
    if worst > eps:
        raise Mismatch(label, f"within {eps:g} of the minimum from step {steps} to {2 * steps}",
                       f"up to {worst:.3g} away", detail=str(outcome),
                       cause="the point only passes the minimum around the last step, and leaves it again")


RAVINE_STEPS, RAVINE_EPS = 30, 1e-2


def ravine_momentum():
    """lr and momentum that bring SGD within 0.01 of the ravine's minimum in 30 steps."""
    return {"lr": 0.1, "momentum": 0.4}


def _ravine_cause(lr, momentum, outcome):
    if outcome.diverged_at is not None or outcome.gaps[1] > outcome.gaps[0]:
        return ("lr too large: across the valley (y) the curvature is 20, and the steps across it "
                "grow instead of shrinking. Lower lr")
    if momentum == 0:
        return ("without momentum SGD cannot make it: an lr small enough for y (curvature 20) "
                "crawls along x (curvature 1). Add momentum")
    if momentum >= 0.75 and outcome.flips[0] >= 2:  # it does swing along x: past 0 and back
        return (f"momentum {momentum:g} is too much: the ball swings past the minimum and back, and "
                f"its swings shrink only by about √μ = {momentum ** 0.5:.2f} per step. Use less momentum")
    if outcome.zigzag() == "y":
        return "it still bounces across the valley (y): lower lr a little, or add a little momentum"
    return ("too slow along the valley floor (x): raise lr (while y stays stable) or momentum")


@exercise("05.2", "SGD with momentum through the ravine", reference=ravine_momentum, hints=[
    "Plain SGD needs lr < 0.1 for the steep y direction (curvature 20) and then crawls along x "
    "(curvature 1). Momentum lets a larger lr work and speeds up the slow direction, but too much "
    "of it makes the point swing. Try the playground (surface ravine, optimizer momentum, 30 steps).",
    "Look for lr near 0.1 and a moderate momentum, 0.3–0.6, not 0.9: with μ = 0.9 the swings decay "
    "by only √0.9 ≈ 0.95 per step.",
    "For a quadratic with curvatures 1 and 20 the best heavy-ball setting is lr = 4/(√20 + 1)² ≈ 0.13, "
    "momentum = ((√20 − 1)/(√20 + 1))² ≈ 0.40. Slightly smaller, e.g. {\"lr\": 0.1, \"momentum\": 0.4}, "
    "works too.",
])
def check_ravine_momentum(candidate):
    label = f"SGD on the ravine from {RAVINE.start}, {RAVINE_STEPS} steps"
    settings = _settings(candidate, ("lr", "momentum"), label)
    lr, momentum = float(settings["lr"]), float(settings["momentum"])
    label = f"SGD(lr={lr:g}, momentum={momentum:g}) on the ravine from {RAVINE.start}, {RAVINE_STEPS} steps"
    outcome = _run(RAVINE, lambda params: optim.SGD(params, lr=lr, momentum=momentum), RAVINE_STEPS, label)
    if outcome.diverged_at is not None or outcome.distance > RAVINE_EPS:
        raise Mismatch(label, f"within {RAVINE_EPS:g} of the minimum (0, 0) after {RAVINE_STEPS} steps",
                       str(outcome), cause=_ravine_cause(lr, momentum, outcome))
    if hidden_pass():
        _expect_it_stays(RAVINE, lambda params: optim.SGD(params, lr=lr, momentum=momentum), RAVINE_STEPS,
                         RAVINE_EPS, label)
    return (f"SGD(lr={lr:g}, momentum={momentum:g}) ends {outcome.distance:.1e} from the minimum after "
            f"{RAVINE_STEPS} steps (first within {RAVINE_EPS:g} at step {outcome.reached(RAVINE_EPS)})")


ROSENBROCK_STEPS, ROSENBROCK_EPS = 300, 5e-2


def rosenbrock_adam():
    """lr and betas that bring Adam within 0.05 of Rosenbrock's minimum in 300 steps."""
    return {"lr": 0.05, "betas": (0.9, 0.9)}


def _rosenbrock_cause(lr, beta1, beta2, outcome):
    if outcome.diverged_at is not None:
        return "lr too large"
    if beta2 >= 0.99:
        return (f"β₂ = {beta2:g} averages the squared gradients over about 1/(1 − β₂) = "
                f"{1 / (1 - beta2):.0f} steps. The huge gradients of the steep walls at the start stay "
                "in that average, so √v̂ stays large and the steps along the flat valley floor stay "
                "tiny. A smaller β₂ forgets them sooner")
    if lr * ROSENBROCK_STEPS < 10:
        return (f"lr too small: Adam moves each coordinate by about lr per step at most, and "
                f"{ROSENBROCK_STEPS} steps of {lr:g} cannot cover the long curved valley")
    if beta1 < 0.8 and outcome.zigzag():
        return (f"β₁ = {beta1:g} is little momentum: the path zig-zags across the narrow valley "
                "instead of following it. Use a larger β₁")
    if lr > 0.2:
        return "lr too large: near the minimum each step is about lr long, so the point keeps bouncing"
    return "not there yet: try another lr (0.05–0.2) or β₂ (0.8–0.95)"


@exercise("05.3", "Adam along Rosenbrock's valley", reference=rosenbrock_adam, hints=[
    "Run Adam on Rosenbrock in the playground and watch the loss curve. With the default betas "
    "(0.9, 0.999) it stalls: ask yourself what √v̂ remembers from the first, very steep steps.",
    "β₂ sets how long Adam remembers squared gradients: about 1/(1 − β₂) steps. Forget the steep "
    "start faster (β₂ 0.8–0.95) and keep β₁ = 0.9; then pick lr around 0.05–0.2.",
    "{\"lr\": 0.05, \"betas\": (0.9, 0.9)} ends about 0.005 from (1, 1).",
])
def check_rosenbrock_adam(candidate):
    label = f"Adam on Rosenbrock from {ROSENBROCK.start}, {ROSENBROCK_STEPS} steps"
    settings = _settings(candidate, ("lr", "betas"), label)
    betas = settings["betas"]
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise Mismatch(label, "betas = (β₁, β₂)", betas,
                       cause="betas is a pair of numbers, like (0.9, 0.999)")
    lr, (beta1, beta2) = float(settings["lr"]), (float(betas[0]), float(betas[1]))
    label = (f"Adam(lr={lr:g}, betas=({beta1:g}, {beta2:g})) on Rosenbrock from {ROSENBROCK.start}, "
             f"{ROSENBROCK_STEPS} steps")
    outcome = _run(ROSENBROCK, lambda params: optim.Adam(params, lr=lr, betas=(beta1, beta2)),
                   ROSENBROCK_STEPS, label)
    if outcome.diverged_at is not None or outcome.distance > ROSENBROCK_EPS:
        raise Mismatch(label,
                       f"within {ROSENBROCK_EPS:g} of the minimum (1, 1) after {ROSENBROCK_STEPS} steps",
                       str(outcome), cause=_rosenbrock_cause(lr, beta1, beta2, outcome))
    if hidden_pass():
        _expect_it_stays(ROSENBROCK, lambda params: optim.Adam(params, lr=lr, betas=(beta1, beta2)),
                         ROSENBROCK_STEPS, ROSENBROCK_EPS, label)
    return (f"Adam(lr={lr:g}, betas=({beta1:g}, {beta2:g})) ends {outcome.distance:.1e} from (1, 1) "
            f"after {ROSENBROCK_STEPS} steps (first within {ROSENBROCK_EPS:g} at step "
            f"{outcome.reached(ROSENBROCK_EPS)})")
