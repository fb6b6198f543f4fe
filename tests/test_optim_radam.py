import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import assert_resumes, cases, compare

import helpers.optim as ours

# β₂ = 0.9 makes ρₜ > 5 from step 6 on, β₂ = 0.999 from step 7: both branches are run
GROUPS = ({"lr": 0.01}, {"lr": 0.003, "betas": (0.8, 0.9), "weight_decay": 0.05})
OPTIONS = [
    {},
    {"betas": (0.5, 0.9)},
    {"eps": 1e-3},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decoupled_weight_decay": True},
    {"maximize": True},
    {"betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
]


@pytest.mark.parametrize(("options", "dtype"), cases(OPTIONS), ids=str)
def test_matches_torch(options, dtype):
    compare(ours.RAdam, torch.optim.RAdam, dtype, GROUPS, **options)


@settings(max_examples=8, deadline=None)
@given(
    lr=st.floats(0, 0.1),
    beta1=st.floats(0, 0.99),
    beta2=st.floats(0, 0.9999),
    weight_decay=st.floats(0, 0.2),
    decoupled=st.booleans(),
)
def test_matches_torch_over_hyperparameters(lr, beta1, beta2, weight_decay, decoupled):
    compare(
        ours.RAdam,
        torch.optim.RAdam,
        torch.float64,
        ({}, {"lr": lr / 2}),
        steps=25,
        lr=lr,
        betas=(beta1, beta2),
        weight_decay=weight_decay,
        decoupled_weight_decay=decoupled,
    )


def test_state_dict_resumes():
    assert_resumes(ours.RAdam, torch.optim.RAdam, torch.float32, GROUPS)
