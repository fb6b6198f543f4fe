import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import DTYPES, SHAPES, TOL, assert_resumes, assert_same_errors, compare

import helpers.optim as ours

GROUPS = ({"lr": 0.01}, {"lr": 0.05, "beta2_decay": -0.5, "d": 2.0})
OPTIONS = [
    {"eps": eps, "weight_decay": wd, "maximize": mx}
    for eps, wd, mx in itertools.product(((None, 1e-3), (1e-10, 1e-2)), (0, 0.1), (False, True))
]
# factored over the last two dims of a 3-D param; a 0-D param; a factored n × 1 param
OTHER_SHAPES = ((2, 3, 4), (), (5, 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("options", "shapes"), [(o, SHAPES) for o in OPTIONS]
                         + [(o, OTHER_SHAPES) for o in OPTIONS[::3]], ids=str)
def test_matches_torch(options, shapes, dtype, record_property):
    record_property(
        "deviation", compare(ours.Adafactor, torch.optim.Adafactor, dtype, GROUPS, shapes=shapes, **options)
    )


@settings(max_examples=15, deadline=None)
@given(
    lr=st.floats(0, 0.2),
    beta2_decay=st.floats(-1, 0),
    eps1=st.floats(1e-12, 1e-3),
    eps2=st.floats(0, 1e-2),
    d=st.floats(1, 5),
    weight_decay=st.floats(0, 0.5),
)
def test_matches_torch_over_hyperparameters(lr, beta2_decay, eps1, eps2, d, weight_decay):
    compare(
        ours.Adafactor,
        torch.optim.Adafactor,
        torch.float64,
        ({}, {"lr": lr / 2}),
        steps=20,
        lr=lr,
        beta2_decay=beta2_decay,
        eps=(eps1, eps2),
        d=d,
        weight_decay=weight_decay,
    )


def test_defaults_match_torch():
    params = [torch.zeros(1, requires_grad=True)]
    theirs = torch.optim.Adafactor(params).defaults
    assert ours.Adafactor(params).defaults == {k: theirs[k] for k in ours.Adafactor(params).defaults}


def test_matrix_state_is_one_row_and_one_column():
    """The point of Adafactor: an n × m matrix keeps n + m second-moment numbers."""
    p = torch.randn(6, 7, requires_grad=True)
    opt = ours.Adafactor([p])
    p.sum().backward()
    opt.step()
    shapes = {k: tuple(v.shape) for k, v in opt.state[p].items() if k != "step"}
    assert shapes == {"row_var": (6, 1), "col_var": (1, 7)}


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_eps1_is_the_machine_epsilon(dtype):
    """Gradients so small that V < ε₁² everywhere: then U = G/ε₁ exactly, and the step is
    θ₁ = θ₀ − α·G/ε₁ with α = RMS(θ₀)·min(lr, 1), ε₁ = torch.finfo(dtype).eps."""
    eps1 = torch.finfo(dtype).eps
    g = torch.Generator().manual_seed(0)
    start, weights = (torch.randn(3, 4, generator=g, dtype=dtype) for _ in range(2))
    weights *= eps1 / 10  # the gradient
    expected = start - start.norm() / 12**0.5 * 1e-2 * weights / eps1
    for cls in (ours.Adafactor, torch.optim.Adafactor):
        p = start.clone().requires_grad_()
        opt = cls([p])
        (weights * p).sum().backward()
        opt.step()
        torch.testing.assert_close(p.detach(), expected, rtol=TOL[dtype], atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_resumes(dtype, record_property):
    record_property(
        "deviation", assert_resumes(ours.Adafactor, torch.optim.Adafactor, dtype, GROUPS, weight_decay=0.1)
    )


def test_bad_arguments_raise_like_torch():
    assert_same_errors(
        ours.Adafactor,
        torch.optim.Adafactor,
        [
            {"lr": -0.01},
            {"beta2_decay": 0.1},
            {"eps": (-1e-3, 1e-3)},
            {"eps": (None, -1e-3)},
            {"d": 0.5},
            {"weight_decay": -0.1},
        ],
    )
