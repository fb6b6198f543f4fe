"""Run an optimizer and its reference side by side on the same deterministic problem.

The problem: three parameters in two param groups, each pulled towards a fixed
least-squares target, plus seeded per-step noise so the gradients keep changing:

    loss_t(p) = Σ_i ½‖A_i p_i − b_i‖² + ⟨n_{t,i}, p_i⟩

The second parameter takes no part in every third step, so its ``.grad`` is None
there and the optimizer must skip it. All data is made in float64 from fixed seeds
and then cast, so float32 and float64 runs see the same problem.

Typical use::

    dev = compare(helpers.optim.Adam, torch.optim.Adam, torch.float64,
                  groups=({"lr": 1e-2}, {"lr": 3e-3, "amsgrad": True}))
    assert_resumes(helpers.optim.Adam, torch.optim.Adam, torch.float64)
"""

import copy
import io
from functools import cache

import torch

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}
DTYPES = (torch.float32, torch.float64)
SHAPES = ((3, 4), (4,), (5,))  # param 0 and 1 in group 0, param 2 in group 1
SPLIT = 2
SKIPPED = 1  # index of the parameter whose grad is None on every third step
MAX_STEPS = 200


@cache
def _data(shapes, dtype):
    """Fixed start values, matrices A, targets b and per-step noise (made in float64)."""
    g = torch.Generator().manual_seed(0)
    start, mats, targets = [], [], []
    for shape in shapes:
        n = torch.Size(shape).numel()
        start.append(torch.randn(shape, generator=g, dtype=torch.float64).to(dtype))
        mats.append((torch.randn(n, n, generator=g, dtype=torch.float64) / (2 * n**0.5)).to(dtype))
        targets.append(torch.randn(n, generator=g, dtype=torch.float64).to(dtype))
    noise = [[0.1 * torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]
             for _ in range(MAX_STEPS)]
    return start, mats, targets, noise


def make_params(dtype, shapes=SHAPES):
    """Fresh leaf tensors with the fixed start values."""
    return [x.clone().requires_grad_() for x in _data(tuple(shapes), dtype)[0]]


def closure_for(opt, params, t):
    """The closure of step t: sets each present parameter's ``.grad`` to ∇loss_t (None for
    the skipped one), returns loss_t. Gradients are computed in closed form, which is
    exact and much faster than autograd on such small tensors."""
    _, mats, targets, noise = _data(tuple(tuple(p.shape) for p in params), params[0].dtype)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = 0.0
        with torch.no_grad():
            for i, p in enumerate(params):
                if i == SKIPPED and t % 3 == 2:
                    continue
                A, n = mats[i], noise[t][i]
                r = A @ p.reshape(-1) - targets[i]
                loss = loss + 0.5 * r @ r + (n * p).sum()
                p.grad = (A.T @ r).reshape(p.shape) + n
        return loss
    return closure


def build(opt_class, dtype, groups=({}, {}), shapes=SHAPES, split=SPLIT, **defaults):
    """Parameters and an optimizer with two param groups (or one if ``groups`` has one)."""
    params = make_params(dtype, shapes)
    if len(groups) == 1:
        spec = [{"params": params, **groups[0]}]
    else:
        spec = [{"params": params[:split], **groups[0]}, {"params": params[split:], **groups[1]}]
    return params, opt_class(spec, **defaults)


def deviation(ours, theirs):
    """Largest |ours − theirs| relative to the largest |theirs| (0 if both are 0)."""
    ours, theirs = torch.as_tensor(ours).double(), torch.as_tensor(theirs).double()
    scale = theirs.abs().max()
    diff = (ours - theirs).abs().max()
    return 0.0 if diff == 0 else float(diff / scale) if scale > 0 else float("inf")


def state_deviation(ours, theirs, params_ours, params_theirs):
    """Deviation over all state tensors; asserts identical keys, shapes and dtypes."""
    worst = 0.0
    for po, pt in zip(params_ours, params_theirs):
        so, st = ours.state.get(po, {}), theirs.state.get(pt, {})
        assert so.keys() == st.keys(), f"state keys {sorted(so)} != torch's {sorted(st)}"
        for key in st:
            a, b = so[key], st[key]
            if torch.is_tensor(b):
                assert torch.is_tensor(a), f"state[{key!r}] is {type(a).__name__}, torch's a tensor"
                assert (a.dtype, a.shape) == (b.dtype, b.shape), (
                    f"state[{key!r}]: {a.dtype} {tuple(a.shape)} vs torch's {b.dtype} {tuple(b.shape)}")
            worst = max(worst, deviation(a, b))
    return worst


def compare(ours_class, theirs_class, dtype, groups=({}, {}), steps=60, *, shapes=SHAPES,
            split=SPLIT, check_state=True, **defaults):
    """Step both optimizers in lockstep; assert params, losses (and state) agree at every step.

    Returns the largest relative deviation seen, so tests can report it.
    """
    po, ours = build(ours_class, dtype, groups, shapes, split, **defaults)
    pt, theirs = build(theirs_class, dtype, groups, shapes, split, **defaults)
    tol, worst = TOL[dtype], 0.0
    for t in range(steps):
        lo = ours.step(closure_for(ours, po, t))
        lt = theirs.step(closure_for(theirs, pt, t))
        devs = [deviation(lo, lt)] + [deviation(a, b) for a, b in zip(po, pt)]
        if check_state:
            devs.append(state_deviation(ours, theirs, po, pt))
        worst = max(worst, *devs)
        assert worst <= tol, (
            f"{ours_class.__name__} vs torch {dtype} groups={groups} {defaults}: "
            f"relative deviation {worst:.3g} > {tol:g} at step {t}")
    for po_, pt_ in zip(po, pt):
        assert po_.dtype == pt_.dtype
    return worst


def run(opt, params, start, steps):
    for t in range(start, start + steps):
        opt.step(closure_for(opt, params, t))


def saved(opt):
    """opt.state_dict() after a torch.save/torch.load round trip (as on disk)."""
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def resumed(first_class, second_class, dtype, groups=({}, {}), steps=60, *, shapes=SHAPES,
            split=SPLIT, **defaults):
    """Params after ``steps``: first half with first_class, then its saved state loaded
    into a fresh second_class on copies of the parameters for the second half."""
    params, first = build(first_class, dtype, groups, shapes, split, **defaults)
    run(first, params, 0, steps // 2)
    state = saved(first)
    copies = [p.detach().clone().requires_grad_() for p in params]
    _, second = build(second_class, dtype, groups, shapes, split, **defaults)
    params_second = [p for g in second.param_groups for p in g["params"]]
    with torch.no_grad():
        for p, c in zip(params_second, copies):
            p.copy_(c)
    # change a hyperparameter in the fresh optimizer: loading must restore the saved one
    second.param_groups[0]["lr"] = 123.0
    second.load_state_dict(copy.deepcopy(state))
    run(second, params_second, steps // 2, steps - steps // 2)
    return params_second


def uninterrupted(opt_class, dtype, groups=({}, {}), steps=60, *, shapes=SHAPES, split=SPLIT,
                  **defaults):
    params, opt = build(opt_class, dtype, groups, shapes, split, **defaults)
    run(opt, params, 0, steps)
    return params


def assert_resumes(ours_class, theirs_class, dtype, groups=({}, {}), steps=60, **kw):
    """Save mid-run and resume: ours→ours is bit-identical to the uninterrupted run;
    torch→ours and ours→torch agree with it within TOL. Returns the largest deviation."""
    ref = uninterrupted(ours_class, dtype, groups, steps, **kw)
    for a, b in zip(resumed(ours_class, ours_class, dtype, groups, steps, **kw), ref):
        assert torch.equal(a, b), "resuming from our own state_dict changed the run"
    worst = 0.0
    for first, second in ((theirs_class, ours_class), (ours_class, theirs_class)):
        for a, b in zip(resumed(first, second, dtype, groups, steps, **kw), ref):
            worst = max(worst, deviation(a, b))
        assert worst <= TOL[dtype], (
            f"{first.__module__}.{first.__name__} → {second.__module__}.{second.__name__}: "
            f"resumed run deviates by {worst:.3g}")
    return worst


def assert_same_errors(ours_class, theirs_class, bad_kwargs):
    """Every kwargs set in ``bad_kwargs`` makes both classes raise ValueError, same message."""
    for kwargs in bad_kwargs:
        messages = []
        for cls in (ours_class, theirs_class):
            try:
                cls([torch.zeros(2, requires_grad=True)], **kwargs)
            except ValueError as e:
                messages.append(str(e))
            else:
                raise AssertionError(f"{cls.__module__}.{cls.__name__}({kwargs}) did not raise")
        assert messages[0] == messages[1], f"{kwargs}: {messages[0]!r} vs torch's {messages[1]!r}"
