import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import assert_resumes, cases, compare

import helpers.optim as ours

GROUPS = ({"lr": 0.05}, {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.03})
OPTIONS = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.3},
    {"momentum": 0.9, "nesterov": True},
    {"weight_decay": 1e-2},
    {"maximize": True},
    {"momentum": 0.9, "dampening": 0.3, "weight_decay": 1e-2, "maximize": True},
    {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2, "maximize": True},
]


@pytest.mark.parametrize(("options", "dtype"), cases(OPTIONS), ids=str)
def test_matches_torch(options, dtype):
    compare(ours.SGD, torch.optim.SGD, dtype, GROUPS, **options)


@settings(max_examples=8, deadline=None)
@given(
    lr=st.floats(0, 0.2),
    momentum=st.floats(0, 0.99),
    dampening=st.floats(0, 1),
    weight_decay=st.floats(0, 0.1),
    nesterov=st.booleans(),
)
def test_matches_torch_over_hyperparameters(lr, momentum, dampening, weight_decay, nesterov):
    if nesterov:
        momentum, dampening = max(momentum, 0.1), 0.0
    compare(
        ours.SGD,
        torch.optim.SGD,
        torch.float64,
        ({}, {"lr": lr / 2}),
        steps=25,
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
    )


def test_state_dict_resumes():
    assert_resumes(ours.SGD, torch.optim.SGD, torch.float32, GROUPS, momentum=0.9, nesterov=True)
