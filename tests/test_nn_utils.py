"""helpers.nn.utils against torch.nn.utils: gradient clipping over many configurations."""

import itertools
import math
import warnings

import pytest
import torch

from helpers.nn import utils as ours

theirs = torch.nn.utils

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
NORMS = [2.0, 1.0, 3.0, 0.5, math.inf, "inf", 2]
MAX_NORMS = [1e-3, 0.5, 1.0, 100.0, 0]
SHAPES = [(), (3,), (2, 3), (4, 1, 2)]


def _params(dtype, seed, none_at=(), scale=1.0, mixed=False):
    g = torch.Generator().manual_seed(seed)
    params = []
    for i, shape in enumerate(SHAPES):
        d = torch.float32 if mixed and i % 2 else dtype
        p = torch.randn(shape, generator=g, dtype=torch.float64).to(d).requires_grad_()
        if i not in none_at:
            p.grad = (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(d)
        params.append(p)
    return params


def _grads(params):
    return [None if p.grad is None else p.grad.clone() for p in params]


def _deviation(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return 0.0
    assert a.dtype == b.dtype and a.shape == b.shape
    both_nan = a.isnan() & b.isnan()
    assert torch.equal(a.isnan(), b.isnan())
    a, b = a.double().masked_fill(both_nan, 0), b.double().masked_fill(both_nan, 0)
    if torch.isinf(a).any() or torch.isinf(b).any():
        assert torch.equal(a, b)
        return 0.0
    return ((a - b).abs() / b.abs().clamp(min=1e-30)).max().item() if a.numel() else 0.0


# Relative: a sum in another order; largest seen 6.5e-16, 0, 3.5e-7, 2.7e-7.
TOLERANCE = {torch.float64: 1e-15, torch.float32: 1e-6, torch.bfloat16: 1e-6, torch.float16: 1e-6}
# Every dtype × norm × max_norm, each with one of the 18 (None grads, scale, mixed dtypes) in turn:
# every dtype meets all 18 (35 consecutive rows each), at an 18th of the full product's time.
REST = list(itertools.product([(), (1,), (0, 3)], [0.01, 1.0, 30.0], [False, True]))
CONFIGS = [(*core, *REST[i % len(REST)])
           for i, core in enumerate(itertools.product(DTYPES, NORMS, MAX_NORMS))]


@pytest.mark.parametrize("foreach", [None, False])
def test_clip_grad_norm_matches_torch_over_every_configuration(foreach):
    worst = 0.0
    for seed, (dtype, norm_type, max_norm, none_at, scale, mixed) in enumerate(CONFIGS):
        a = _params(dtype, seed, none_at, scale, mixed)
        b = _params(dtype, seed, none_at, scale, mixed)
        total_ours = ours.clip_grad_norm_(a, max_norm, norm_type, foreach=foreach)
        total_torch = theirs.clip_grad_norm_(b, max_norm, norm_type, foreach=foreach)
        tol = TOLERANCE[dtype]
        deviations = [_deviation(total_ours, total_torch)]
        deviations += [_deviation(x.grad, y.grad) for x, y in zip(a, b)]
        assert max(deviations) <= tol, (dtype, norm_type, max_norm, none_at, scale, mixed, deviations)
        if dtype == torch.float64:
            worst = max(worst, *deviations)
    assert worst <= 1e-15  # the largest float64 deviation seen (reported in the notes)
    assert len(CONFIGS) == 4 * 7 * 5 and len({(c[0], *c[3:]) for c in CONFIGS}) == 4 * len(REST)


def test_float64_clipping_is_bit_for_bit_torchs_with_the_plain_loop():
    for seed, norm_type in enumerate(NORMS):
        a, b = _params(torch.float64, seed, scale=5), _params(torch.float64, seed, scale=5)
        expected = theirs.clip_grad_norm_(b, 0.7, norm_type, foreach=False)
        assert torch.equal(ours.clip_grad_norm_(a, 0.7, norm_type), expected)
        assert all(torch.equal(x.grad, y.grad) for x, y in zip(a, b))


def test_it_works_in_place_skips_none_and_returns_the_norm_before_clipping():
    params = _params(torch.float64, 0, none_at=(1,), scale=10)
    grads_before = [p.grad for p in params]
    values_before = _grads(params)
    weights = [p.detach().clone() for p in params]
    total = ours.clip_grad_norm_(params, 1.0)
    expected = torch.cat([g.flatten() for g in values_before if g is not None]).norm()
    assert torch.allclose(total, expected, rtol=1e-15)
    assert all(p.grad is g for p, g in zip(params, grads_before))  # the same tensors, scaled in place
    assert params[1].grad is None
    after = torch.cat([p.grad.flatten() for p in params if p.grad is not None]).norm()
    assert abs(after.item() - 1.0) < 1e-5
    assert all(torch.equal(p.detach(), w) for p, w in zip(params, weights))  # weights untouched


def test_a_norm_below_max_norm_leaves_the_gradients_as_they_were():
    params = _params(torch.float64, 1, scale=0.01)
    before = _grads(params)
    ours.clip_grad_norm_(params, 100.0)
    assert all(torch.equal(p.grad, g) for p, g in zip(params, before))


def test_a_single_tensor_a_generator_and_empty_inputs_behave_as_torchs():
    a, b = _params(torch.float64, 2, scale=3), _params(torch.float64, 2, scale=3)
    assert torch.equal(ours.clip_grad_norm_(a[1], 0.1), theirs.clip_grad_norm_(b[1], 0.1))
    assert torch.equal(a[1].grad, b[1].grad)
    for fn in (ours.clip_grad_norm_, theirs.clip_grad_norm_):
        assert torch.equal(fn([], 1.0), torch.tensor(0.0))
        assert torch.equal(fn(_params(torch.float64, 0, none_at=range(4)), 1.0), torch.tensor(0.0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn((p for p in []), 1.0)
        assert [str(w.message) for w in caught] == [
            "`parameters` is an empty generator, no gradient clipping will occur."]


def test_a_generator_is_consumed_once_and_clipped_like_a_list():
    a, b = _params(torch.float32, 3, scale=4), _params(torch.float32, 3, scale=4)
    assert torch.equal(ours.clip_grad_norm_((p for p in a), 0.5), theirs.clip_grad_norm_((p for p in b), 0.5))
    assert all(torch.equal(x.grad, y.grad) for x, y in zip(a, b))


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_gradients_raise_with_error_if_nonfinite_and_are_scaled_otherwise(bad):
    a, b = _params(torch.float32, 4), _params(torch.float32, 4)
    a[2].grad[0, 1] = bad
    b[2].grad[0, 1] = bad
    with pytest.raises(RuntimeError) as ours_error:
        ours.clip_grad_norm_(a, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as torch_error:
        theirs.clip_grad_norm_(b, 1.0, error_if_nonfinite=True)
    assert str(ours_error.value) == str(torch_error.value)
    total_ours, total_torch = ours.clip_grad_norm_(a, 1.0), theirs.clip_grad_norm_(b, 1.0)
    assert _deviation(total_ours, total_torch) == 0
    assert all(torch.equal(x.grad.isnan(), y.grad.isnan()) for x, y in zip(a, b))
    assert all(_deviation(x.grad, y.grad) == 0 for x, y in zip(a, b))


def test_get_total_norm_and_clip_grads_with_norm_match_torch():
    for norm_type in NORMS:
        a, b = _params(torch.float64, 5, scale=2), _params(torch.float64, 5, scale=2)
        total = ours.get_total_norm([p.grad for p in a], norm_type)
        assert torch.allclose(total, theirs.get_total_norm([p.grad for p in b], norm_type), rtol=1e-15)
        ours.clip_grads_with_norm_(a, 0.3, total)
        theirs.clip_grads_with_norm_(b, 0.3, total)
        assert all(_deviation(x.grad, y.grad) <= 1e-15 for x, y in zip(a, b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clip_value", [0.0, 0.1, 1, 5.0])
@pytest.mark.parametrize("foreach", [None, False, True])
def test_clip_grad_value_matches_torch_exactly(dtype, clip_value, foreach):
    a, b = _params(dtype, 6, none_at=(0,), scale=2), _params(dtype, 6, none_at=(0,), scale=2)
    a[3].grad.view(-1)[0] = math.inf
    b[3].grad.view(-1)[0] = math.inf
    grads = [p.grad for p in a]
    assert ours.clip_grad_value_(a, clip_value, foreach=foreach) is None
    theirs.clip_grad_value_(b, clip_value, foreach=foreach)
    assert all(p.grad is g for p, g in zip(a, grads))
    assert all(_deviation(x.grad, y.grad) == 0 for x, y in zip(a, b))
    assert all(p.grad.abs().max() <= clip_value for p in a if p.grad is not None)


def test_clip_grad_value_takes_a_single_tensor_and_a_generator():
    a, b = _params(torch.float32, 7, scale=3), _params(torch.float32, 7, scale=3)
    ours.clip_grad_value_(a[2], 0.5)
    theirs.clip_grad_value_(b[2], 0.5)
    ours.clip_grad_value_((p for p in a[:2]), 0.25)
    theirs.clip_grad_value_((p for p in b[:2]), 0.25)
    assert all(torch.equal(x.grad, y.grad) for x, y in zip(a, b))
