"""Run an optimizer and its reference side by side on the same deterministic problem.

The problem: three parameters in two param groups, each pulled towards a fixed
target c by a fixed positive curvature h, plus seeded per-step noise n_t so the
gradients keep changing:

    loss_t(p) = Σ ½·h·(p − c)² + n_t·(p − c),   ∇loss_t(p) = h·(p − c) + n_t

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
    """Start values, curvatures h, targets c and per-step noise n_t (made in float64)."""
    g = torch.Generator().manual_seed(0)

    def draw(shape, low=-1.0, high=1.0):
        x = low + (high - low) * torch.rand(shape, generator=g, dtype=torch.float64)
        return x.to(dtype)

    start = [draw(s) for s in shapes]
    curvature = [draw(s, 0.5, 2.0) for s in shapes]
    target = [draw(s) for s in shapes]
    noise = [[draw(s, -0.2, 0.2) for s in shapes] for _ in range(MAX_STEPS)]
    return start, curvature, target, noise


def cases(options):
    """(options, dtype) pairs for pytest.mark.parametrize: every option set in float64, and
    the first (the defaults) and the last (all options at once) in float32 as well."""
    return [(o, torch.float64) for o in options] + [(o, torch.float32) for o in (options[0], options[-1])]


def make_params(dtype, shapes=SHAPES):
    """Fresh leaf tensors with the fixed start values."""
    return [x.clone().requires_grad_() for x in _data(tuple(shapes), dtype)[0]]


def closure_for(opt, params, t):
    """The closure of step t: clears the grads (to None), sets each present parameter's
    ``.grad`` to ∇loss_t and returns loss_t. The gradient is computed in closed form:
    exact, and much faster than autograd on such small tensors."""
    _, curvature, target, noise = _data(tuple(tuple(p.shape) for p in params), params[0].dtype)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = 0.0
        with torch.no_grad():
            for i, p in enumerate(params):
                if i == SKIPPED and t % 3 == 2:
                    continue
                d, n = p - target[i], noise[t][i]
                p.grad = torch.addcmul(n, curvature[i], d)
                loss = loss + 0.5 * torch.dot(d.reshape(-1), (p.grad + n).reshape(-1))
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


def _relative_rows(ours, theirs):
    """Per row: max |ours − theirs| / max |theirs|. Equal entries count 0, also NaN against
    NaN and inf against inf (torch gives them too); any other NaN counts as inf."""
    same = (ours == theirs) | (ours.isnan() & theirs.isnan())
    diff = torch.where(same, 0.0, (ours - theirs).abs().nan_to_num(nan=float("inf"))).amax(-1)
    scale = theirs.abs().nan_to_num(nan=0.0, posinf=0.0).amax(-1)
    return torch.where(diff == 0, 0.0, diff / scale)  # diff / 0 = inf


def deviation(ours, theirs):
    """Largest |ours − theirs| relative to the largest |theirs|, as a float (see _relative_rows)."""
    ours, theirs = (torch.as_tensor(x).detach().double().reshape(-1) for x in (ours, theirs))
    return float(_relative_rows(ours, theirs))


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
                    f"state[{key!r}]: {a.dtype} {tuple(a.shape)} vs torch's {b.dtype} {tuple(b.shape)}"
                )
            worst = max(worst, deviation(a, b))
    return worst


def _name(cls):
    return f"{cls.__module__}.{cls.__qualname__}" if hasattr(cls, "__qualname__") else repr(cls)


def _flat(params, loss):
    return torch.cat([torch.as_tensor(loss).reshape(1)] + [p.detach().reshape(-1) for p in params])


def compare(
    ours_class,
    theirs_class,
    dtype,
    groups=({}, {}),
    steps=50,
    *,
    shapes=SHAPES,
    split=SPLIT,
    check_state=True,
    tol=None,
    **defaults,
):
    """Step both optimizers in lockstep; assert that the loss and the params agree after
    every step, and the state (keys, dtypes, values) at the end, within ``tol`` (default
    TOL[dtype]).

    Returns the largest relative deviation seen, so tests can report it.
    """
    po, ours = build(ours_class, dtype, groups, shapes, split, **defaults)
    pt, theirs = build(theirs_class, dtype, groups, shapes, split, **defaults)
    traj_o, traj_t = [], []
    for t in range(steps):
        traj_o.append(_flat(po, ours.step(closure_for(ours, po, t))))
        traj_t.append(_flat(pt, theirs.step(closure_for(theirs, pt, t))))
    a, b = torch.stack(traj_o).double(), torch.stack(traj_t).double()
    per_step = _relative_rows(a, b)
    worst, tol = float(per_step.max()), tol or TOL[dtype]
    what = f"{_name(ours_class)} vs {_name(theirs_class)}, {dtype}, {groups}, {defaults}"
    if worst > tol:
        t = int((per_step > tol).nonzero()[0])
        raise AssertionError(f"{what}: params deviate by {per_step[t]:.3g} > {tol:g} after step {t}")
    if check_state:
        worst = max(worst, state_deviation(ours, theirs, po, pt))
        assert worst <= tol, f"{what}: state deviates by {worst:.3g} > {tol:g}"
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


def resumed(
    first_class, second_class, dtype, groups=({}, {}), steps=50, *, shapes=SHAPES, split=SPLIT, **defaults
):
    """Params after ``steps``: first half with first_class, then its saved state loaded
    into a fresh second_class on copies of the parameters for the second half."""
    params, first = build(first_class, dtype, groups, shapes, split, **defaults)
    run(first, params, 0, steps // 2)
    state = saved(first)
    params_second, second = build(second_class, dtype, groups, shapes, split, **defaults)
    with torch.no_grad():
        for p, q in zip(params_second, params):
            p.copy_(q)
    # change a hyperparameter in the fresh optimizer: loading must restore the saved one
    second.param_groups[0]["lr"] = 123.0
    second.load_state_dict(copy.deepcopy(state))
    run(second, params_second, steps // 2, steps - steps // 2)
    return params_second


def uninterrupted(opt_class, dtype, groups=({}, {}), steps=50, *, shapes=SHAPES, split=SPLIT, **defaults):
    params, opt = build(opt_class, dtype, groups, shapes, split, **defaults)
    run(opt, params, 0, steps)
    return params


def assert_resumes(ours_class, theirs_class, dtype, groups=({}, {}), steps=50, *, exact=True, tol=None, **kw):
    """Save mid-run (through torch.save) and resume in a fresh optimizer:

    - ours→ours continues bit-identically to the uninterrupted run (``exact=False`` skips
      this where torch itself does not: load_state_dict casts state tensors other than
      ``step`` to the param dtype);
    - ours→ours, torch→ours and ours→torch agree with torch→torch within ``tol``
      (default TOL[dtype]).

    Returns the largest deviation from torch→torch.
    """
    reference = resumed(theirs_class, theirs_class, dtype, groups, steps, **kw)
    ours_resumed = resumed(ours_class, ours_class, dtype, groups, steps, **kw)
    if exact:
        for a, b in zip(ours_resumed, uninterrupted(ours_class, dtype, groups, steps, **kw)):
            assert torch.equal(a, b), "resuming from our own state_dict changed the run"
    worst, tol = 0.0, tol or TOL[dtype]
    for first, second in ((ours_class, ours_class), (theirs_class, ours_class), (ours_class, theirs_class)):
        run_ = ours_resumed if first is second else resumed(first, second, dtype, groups, steps, **kw)
        worst = max(worst, *(deviation(a, b) for a, b in zip(run_, reference)))
        assert worst <= tol, (
            f"{_name(first)} → {_name(second)}: resumed run deviates from torch's by {worst:.3g} > {tol:g}"
        )
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
                raise AssertionError(f"{_name(cls)}({kwargs}) did not raise")
        assert messages[0] == messages[1], f"{kwargs}: {messages[0]!r} vs torch's {messages[1]!r}"
