import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import DTYPES, assert_resumes, assert_same_errors, compare

import helpers.optim as ours

GROUPS = ({"lr": 1.0}, {"lr": 0.5, "rho": 0.95, "eps": 1e-4})
OPTIONS = [
    {"rho": rho, "weight_decay": wd, "maximize": mx}
    for rho, wd, mx in itertools.product((0.9, 0.5), (0, 0.1), (False, True))
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_matches_torch(options, dtype, record_property):
    record_property("deviation", compare(ours.Adadelta, torch.optim.Adadelta, dtype, GROUPS,
                                         **options))


@settings(max_examples=15, deadline=None)
@given(lr=st.floats(0, 2), rho=st.floats(0, 1), eps=st.floats(1e-8, 1e-2),
       weight_decay=st.floats(0, 0.5))
def test_matches_torch_over_hyperparameters(lr, rho, eps, weight_decay):
    compare(ours.Adadelta, torch.optim.Adadelta, torch.float64, ({}, {"lr": lr / 2}), steps=20,
            lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)


def test_defaults_match_torch():
    params = [torch.zeros(1, requires_grad=True)]
    theirs = torch.optim.Adadelta(params).defaults
    assert ours.Adadelta(params).defaults == {k: theirs[k] for k in ours.Adadelta(params).defaults}


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_resumes(dtype, record_property):
    record_property("deviation", assert_resumes(ours.Adadelta, torch.optim.Adadelta, dtype,
                                                GROUPS, weight_decay=0.1))


def test_bad_arguments_raise_like_torch():
    assert_same_errors(ours.Adadelta, torch.optim.Adadelta, [
        {"lr": -1.0}, {"rho": -0.1}, {"rho": 1.5}, {"eps": -1e-6}, {"weight_decay": -0.1},
    ])
