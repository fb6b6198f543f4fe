import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import DTYPES, assert_resumes, cases, compare

import helpers.optim as ours

GROUPS = ({"lr": 0.01}, {"lr": 0.003, "betas": (0.8, 0.99), "momentum_decay": 0.01})
OPTIONS = [
    {},
    {"betas": (0.5, 0.9)},
    {"eps": 1e-3},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decoupled_weight_decay": True},
    {"momentum_decay": 0.1},
    {"maximize": True},
    {
        "betas": (0.5, 0.9),
        "eps": 1e-3,
        "weight_decay": 0.1,
        "decoupled_weight_decay": True,
        "momentum_decay": 0.1,
        "maximize": True,
    },
]


@pytest.mark.parametrize(("options", "dtype"), cases(OPTIONS), ids=str)
def test_matches_torch(options, dtype):
    compare(ours.NAdam, torch.optim.NAdam, dtype, GROUPS, **options)


@settings(max_examples=8, deadline=None)
@given(
    lr=st.floats(0, 0.1),
    beta1=st.floats(0, 0.99),
    beta2=st.floats(0, 0.9999),
    weight_decay=st.floats(0, 0.2),
    momentum_decay=st.floats(0, 0.5),
    decoupled=st.booleans(),
)
def test_matches_torch_over_hyperparameters(lr, beta1, beta2, weight_decay, momentum_decay, decoupled):
    compare(
        ours.NAdam,
        torch.optim.NAdam,
        torch.float64,
        ({}, {"lr": lr / 2}),
        steps=25,
        lr=lr,
        betas=(beta1, beta2),
        weight_decay=weight_decay,
        momentum_decay=momentum_decay,
        decoupled_weight_decay=decoupled,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_resumes(dtype):
    # load_state_dict casts the float32 mu_product to float64 params' dtype, in torch too,
    # so a float64 run resumed from a checkpoint is not bit-identical to an uninterrupted one
    assert_resumes(ours.NAdam, torch.optim.NAdam, dtype, GROUPS, exact=dtype == torch.float32)
