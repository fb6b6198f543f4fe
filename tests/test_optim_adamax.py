import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import assert_resumes, cases, compare

import helpers.optim as ours

GROUPS = ({"lr": 0.01}, {"lr": 0.003, "betas": (0.8, 0.99), "weight_decay": 0.05})
OPTIONS = [
    {},
    {"betas": (0.5, 0.9)},
    {"eps": 1e-2},
    {"weight_decay": 0.1},
    {"maximize": True},
    {"betas": (0.5, 0.9), "eps": 1e-2, "weight_decay": 0.1, "maximize": True},
]


@pytest.mark.parametrize(("options", "dtype"), cases(OPTIONS), ids=str)
def test_matches_torch(options, dtype):
    compare(ours.Adamax, torch.optim.Adamax, dtype, GROUPS, **options)


@settings(max_examples=8, deadline=None)
@given(
    lr=st.floats(0, 0.1),
    beta1=st.floats(0, 0.99),
    beta2=st.floats(0, 0.9999),
    eps=st.floats(1e-10, 1e-2),
    weight_decay=st.floats(0, 0.2),
)
def test_matches_torch_over_hyperparameters(lr, beta1, beta2, eps, weight_decay):
    compare(
        ours.Adamax,
        torch.optim.Adamax,
        torch.float64,
        ({}, {"lr": lr / 2}),
        steps=25,
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=weight_decay,
    )


def test_state_dict_resumes():
    assert_resumes(ours.Adamax, torch.optim.Adamax, torch.float32, GROUPS)
