"""Comparisons for checker authors: each raises ``Mismatch`` on the first difference.

    expect_close(case, expected, got)          numbers/tensors: type, shape, dtype, NaN, values
    expect_unchanged(case, before, after, name) an input the candidate must not modify
    compare_function(candidate, reference, cases, mistakes=…)
    compare_optimizer(CandidateCls, ReferenceCls, [OptimCase(lr=0.1, …), …], mistakes=…)

``mistakes`` maps a description of a typical wrong answer to an
implementation of it; when the candidate fails, the one that reproduces the
candidate's answer becomes the reported cause.
"""

from __future__ import annotations

import copy
import math
import numbers

import torch

from .checking import Mismatch, case

__all__ = [
    "compare_function",
    "expect_close",
    "expect_unchanged",
]

# Default tolerances per dtype: float64 is tight enough to catch a float32 intermediate.
_TOLERANCE = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-6),
    torch.bfloat16: (1e-2, 1e-3),
    torch.float16: (1e-2, 1e-3),
}


def _kind(value):
    if isinstance(value, torch.Tensor):
        return "a tensor"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, numbers.Real):
        return "a number"
    if value is None:
        return "None"
    return f"a {type(value).__name__}"


def expect_close(case, expected, got, *, what="result", step=None, rtol=None, atol=None):
    """Check that ``got`` matches ``expected``: same kind (tensor or number, or a
    list/tuple of them), shape, dtype, finiteness, then values within tolerance."""
    where = dict(step=step)
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            raise Mismatch(
                case,
                f"{len(expected)} values",
                _describe_len(got),
                **where,
                detail=f"{what}: expected a {type(expected).__name__} of {len(expected)}",
            )
        for i, (e, g) in enumerate(zip(expected, got)):
            expect_close(case, e, g, what=f"{what}[{i}]", step=step, rtol=rtol, atol=atol)
        return
    if _kind(expected) != _kind(got):
        cause = f"{what} should be {_kind(expected)}, not {_kind(got)}"
        if got is None:
            cause += " (did you forget `return`?)"
        elif isinstance(got, torch.Tensor) and got.numel() == 1:
            cause += " (use .item() to get a Python number)"
        raise Mismatch(case, expected, got, **where, cause=cause)
    if isinstance(expected, torch.Tensor):
        _expect_close_tensors(case, expected, got, what, where, rtol, atol)
    else:
        _expect_close_numbers(case, float(expected), float(got), what, where, rtol, atol)


def _describe_len(value):
    if isinstance(value, (list, tuple)):
        return f"{len(value)} values"
    return _kind(value)


def _nan_cause(what):
    return (
        f"your {what} contains NaN or inf (a division by zero, the square root of a "
        "negative number, or a missing eps?)"
    )


def _expect_close_numbers(case, expected, got, what, where, rtol, atol):
    default_rtol, default_atol = _TOLERANCE[torch.float64]
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    if math.isfinite(expected) and not math.isfinite(got):
        raise Mismatch(case, expected, got, **where, cause=_nan_cause(what))
    if not math.isclose(expected, got, rel_tol=rtol, abs_tol=atol) and expected != got:
        raise Mismatch(
            case, expected, got, **where, detail=f"{what} differs by {abs(expected - got):.3g}"
        )


def _expect_close_tensors(case, expected, got, what, where, rtol, atol):
    if got.shape != expected.shape:
        raise Mismatch(
            case,
            expected,
            got,
            **where,
            detail=f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
            cause="a shape mistake: check broadcasting, a transpose, or a missing/extra dimension",
        )
    if got.dtype != expected.dtype:
        cause = None
        if expected.dtype == torch.float64:
            cause = (
                "your code turned float64 into a lower precision: build new tensors with "
                "torch.zeros_like/…_like or pass dtype=, and avoid .float()"
            )
        raise Mismatch(
            case,
            expected,
            got,
            **where,
            detail=f"{what} has dtype {got.dtype}, expected {expected.dtype}",
            cause=cause,
        )
    expected, got = expected.detach(), got.detach()
    if not expected.is_floating_point():
        if not torch.equal(expected, got):
            raise Mismatch(case, expected, got, **where, detail=f"{what} differs")
        return
    default_rtol, default_atol = _TOLERANCE.get(expected.dtype, _TOLERANCE[torch.float32])
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    bad_nan = torch.isfinite(expected) & ~torch.isfinite(got)
    if bad_nan.any():
        index = _index(bad_nan.nonzero()[0], expected)
        raise Mismatch(
            case,
            expected,
            got,
            **where,
            detail=f"{what}{index} is {got[tuple(bad_nan.nonzero()[0])].item()}",
            cause=_nan_cause(what),
        )
    close = torch.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if not close.all():
        error = torch.where(close, 0.0, (got - expected).abs().nan_to_num(math.inf))
        flat = int(error.argmax())
        position = torch.unravel_index(torch.tensor(flat), expected.shape)
        position = tuple(int(i) for i in position)
        raise Mismatch(
            case,
            expected,
            got,
            **where,
            detail=(
                f"{what} differs; largest difference {error.max().item():.3g} at "
                f"{what}{_index(position, expected)}: expected "
                f"{expected[position].item()!r}, got {got[position].item()!r}"
            ),
        )


def _index(position, tensor):
    if tensor.dim() == 0:
        return ""
    return "[" + ", ".join(str(int(i)) for i in position) + "]"


def _tensors(value, path="input"):
    """(path, tensor) for every tensor (and .grad) inside nested lists/tuples/dicts."""
    if isinstance(value, torch.Tensor):
        yield path, value
        if value.grad is not None:
            yield f"{path}.grad", value.grad
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{path}[{key!r}]")


def expect_unchanged(case, before, after, name):
    """Check that the candidate left its input ``name`` as it was (``before`` is a copy
    taken before the call). Compares tensors, their .grad, and plain values."""
    pairs_before, pairs_after = list(_tensors(before, name)), list(_tensors(after, name))
    if [p for p, _ in pairs_before] != [p for p, _ in pairs_after]:
        raise Mismatch(case, cause=f"your code changed the structure of its input `{name}`")
    if not pairs_before and before != after:
        raise Mismatch(
            case, before, after, cause=f"your code modified its input `{name}`; work on a copy"
        )
    for (path, b), (_, a) in zip(pairs_before, pairs_after):
        if b.shape != a.shape or b.dtype != a.dtype or not torch.equal(b, a.detach()):
            raise Mismatch(
                case,
                b,
                a,
                detail=f"{path} was modified",
                cause=(
                    f"your code modified its input `{name}` in place (e.g. `+=`, `.add_()`, "
                    "`.mul_()`); build a new tensor instead"
                ),
            )


def _call(candidate, args):
    """Call with a deep copy of ``args`` (a tuple of positional args or a dict of kwargs)."""
    args = copy.deepcopy(args)
    if isinstance(args, dict):
        return candidate(**args), args
    return candidate(*args), args


def _diagnose(mistakes, reproduces):
    """The description of the first mistake for which ``reproduces(wrong)`` holds."""
    for description, wrong in (mistakes or {}).items():
        try:
            if reproduces(wrong):
                return description
        except Exception:
            continue
    return None


def compare_function(
    candidate,
    reference,
    cases,
    *,
    mistakes=None,
    in_place=False,
    what="result",
    rtol=None,
    atol=None,
):
    """Run ``candidate`` and ``reference`` on every case and compare.

    ``cases``: {case name: positional args tuple, or kwargs dict}; each call gets
    a fresh deep copy. By default the return values are compared and the
    inputs must stay unchanged; with ``in_place=True`` the function must update
    its (tensor) inputs in place, and the inputs after the call are compared.
    Returns a description of what was verified.
    """
    for name, args in cases.items():
        expected, expected_args = _call(reference, args)
        with case(name):
            got, got_args = _call(candidate, args)
        try:
            if in_place:
                _expect_updated_in_place(name, args, expected_args, got_args, rtol, atol)
            else:
                expect_unchanged(name, args, got_args, "input")
                expect_close(name, expected, got, what=what, rtol=rtol, atol=atol)
        except Mismatch as mismatch:
            if mismatch.cause is None:
                mismatch.cause = _diagnose(
                    mistakes, lambda wrong: _same_outcome(wrong, args, got, got_args, in_place)
                )
            raise
    return f"{len(cases)} cases: " + "; ".join(cases)


def _expect_updated_in_place(name, original, expected_args, got_args, rtol, atol):
    expected = list(_tensors(expected_args))
    got = dict(_tensors(got_args))
    before = dict(_tensors(original))
    for path, e in expected:
        g = got.get(path)
        if g is None:
            raise Mismatch(name, e, None, detail=f"{path} is missing after the call")
        if (
            not path.endswith(".grad")
            and torch.equal(g, before[path])
            and not torch.equal(e, before[path])
        ):
            raise Mismatch(
                name,
                e,
                g,
                detail=f"{path} did not change",
                cause="your code did not update its input in place; `p = p - …` only "
                "rebinds a name, use `p -= …` or `p.sub_(…)`",
            )
        expect_close(name, e, g, what=path, rtol=rtol, atol=atol)


def _same_outcome(wrong, args, got, got_args, in_place):
    out, wrong_args = _call(wrong, args)
    try:
        if in_place:
            for (_, w), (_, g) in zip(_tensors(wrong_args), _tensors(got_args)):
                expect_close("", w, g)
        else:
            expect_close("", out, got)
    except Mismatch:
        return False
    return True
