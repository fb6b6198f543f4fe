import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import assert_resumes, cases, compare

import helpers.optim as ours

GROUPS = ({"lr": 0.01}, {"lr": 0.003, "alpha": 0.9, "momentum": 0.5, "centered": True})
OPTIONS = [
    {},
    {"alpha": 0.5},
    {"eps": 1e-3},
    {"weight_decay": 1e-2},
    {"momentum": 0.9},
    {"centered": True},
    {"maximize": True},
    {"alpha": 0.5, "eps": 1e-3, "weight_decay": 1e-2, "momentum": 0.9, "centered": True, "maximize": True},
]


@pytest.mark.parametrize(("options", "dtype"), cases(OPTIONS), ids=str)
def test_matches_torch(options, dtype):
    compare(ours.RMSprop, torch.optim.RMSprop, dtype, GROUPS, **options)


@settings(max_examples=8, deadline=None)
@given(
    lr=st.floats(0, 0.05),
    alpha=st.floats(0, 0.999),
    eps=st.floats(1e-10, 1e-2),
    weight_decay=st.floats(0, 0.1),
    momentum=st.floats(0, 0.99),
    centered=st.booleans(),
)
def test_matches_torch_over_hyperparameters(lr, alpha, eps, weight_decay, momentum, centered):
    compare(
        ours.RMSprop,
        torch.optim.RMSprop,
        torch.float64,
        ({}, {"lr": lr / 2}),
        steps=25,
        lr=lr,
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        centered=centered,
    )


def test_state_dict_resumes():
    assert_resumes(ours.RMSprop, torch.optim.RMSprop, torch.float32, GROUPS, momentum=0.9, centered=True)
