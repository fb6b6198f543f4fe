import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import DTYPES, assert_resumes, assert_same_errors, compare

import helpers.optim as ours

OPTIONS = [
    {"momentum": m, "dampening": d, "nesterov": n, "weight_decay": wd, "maximize": mx}
    for m, d, n, wd, mx in itertools.product((0, 0.9), (0, 0.3), (False, True), (0, 1e-2),
                                             (False, True))
    if not (n and (m == 0 or d != 0))
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_matches_torch(options, dtype):
    groups = ({"lr": 0.05}, {"lr": 0.02, "momentum": 0.5})
    compare(ours.SGD, torch.optim.SGD, dtype, groups, **options)


@settings(max_examples=25, deadline=None)
@given(lr=st.floats(0, 0.2), momentum=st.floats(0, 0.99), dampening=st.floats(0, 1),
       weight_decay=st.floats(0, 0.1), nesterov=st.booleans())
def test_matches_torch_over_hyperparameters(lr, momentum, dampening, weight_decay, nesterov):
    if nesterov:
        momentum, dampening = max(momentum, 0.1), 0.0
    compare(ours.SGD, torch.optim.SGD, torch.float64, ({}, {"lr": lr / 2}), steps=20, lr=lr,
            momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov)


def test_defaults_match_torch():
    params = [torch.zeros(1, requires_grad=True)]
    theirs = torch.optim.SGD(params).defaults
    assert ours.SGD(params).defaults == {k: theirs[k] for k in ours.SGD(params).defaults}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [{}, {"momentum": 0.9, "nesterov": True}], ids=str)
def test_state_dict_resumes(options, dtype):
    assert_resumes(ours.SGD, torch.optim.SGD, dtype, ({"lr": 0.05}, {"lr": 0.02}), **options)


def test_bad_arguments_raise_like_torch():
    assert_same_errors(ours.SGD, torch.optim.SGD, [
        {"lr": -0.1}, {"momentum": -0.5}, {"weight_decay": -1e-4},
        {"nesterov": True}, {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
    ])
