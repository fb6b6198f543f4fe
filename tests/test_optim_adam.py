from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import DTYPES, assert_resumes, cases, compare

import helpers.optim as ours

GROUPS = ({"lr": 0.01}, {"lr": 0.003, "betas": (0.8, 0.99), "amsgrad": True})
OPTIONS = [
    {},
    {"betas": (0.5, 0.9)},
    {"eps": 1e-3},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decoupled_weight_decay": True},
    {"amsgrad": True},
    {"maximize": True},
    {"betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.1, "amsgrad": True, "maximize": True},
    {"weight_decay": 0.1, "decoupled_weight_decay": True, "amsgrad": True, "maximize": True},
]
ADAMW_OPTIONS = [
    {},
    {"weight_decay": 0.0},
    {"amsgrad": True},
    {"weight_decay": 0.1, "amsgrad": True, "maximize": True},
]


@pytest.mark.parametrize(("options", "dtype"), cases(OPTIONS), ids=str)
def test_adam_matches_torch(options, dtype):
    compare(ours.Adam, torch.optim.Adam, dtype, GROUPS, **options)


@pytest.mark.parametrize(("options", "dtype"), cases(ADAMW_OPTIONS), ids=str)
def test_adamw_matches_torch(options, dtype):
    compare(ours.AdamW, torch.optim.AdamW, dtype, GROUPS, **options)


@settings(max_examples=8, deadline=None)
@given(
    lr=st.floats(0, 0.1),
    beta1=st.floats(0, 0.99),
    beta2=st.floats(0, 0.9999),
    eps=st.floats(1e-10, 1e-2),
    weight_decay=st.floats(0, 0.2),
    amsgrad=st.booleans(),
    decoupled=st.booleans(),
)
def test_adam_matches_torch_over_hyperparameters(lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled):
    compare(
        ours.Adam,
        torch.optim.Adam,
        torch.float64,
        ({}, {"lr": lr / 2}),
        steps=25,
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        decoupled_weight_decay=decoupled,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_state_dict_resumes(dtype):
    assert_resumes(ours.Adam, torch.optim.Adam, dtype, GROUPS, weight_decay=0.1)


def test_adamw_state_dict_resumes():
    assert_resumes(ours.AdamW, torch.optim.AdamW, torch.float32, GROUPS)


def test_adamw_is_adam_with_decoupled_weight_decay():
    decoupled_adam = partial(ours.Adam, decoupled_weight_decay=True)
    compare(ours.AdamW, decoupled_adam, torch.float64, GROUPS, weight_decay=0.1)
    with pytest.raises(AssertionError):  # and differs from the L2 penalty
        compare(ours.AdamW, ours.Adam, torch.float64, GROUPS, weight_decay=0.1)


def test_adamw_stays_decoupled_after_loading_an_adam_state():
    """As torch.optim.AdamW does, loading an Adam state_dict keeps the decay decoupled."""
    p = torch.zeros(2, requires_grad=True)
    opt = ours.AdamW([p])
    opt.load_state_dict(ours.Adam([p], weight_decay=0.1).state_dict())
    assert opt.param_groups[0]["decoupled_weight_decay"] is True
