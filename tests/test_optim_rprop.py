import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import DTYPES, assert_resumes, assert_same_errors, compare

import helpers.optim as ours

GROUPS = ({"lr": 0.01}, {"lr": 0.05, "etas": (0.4, 1.1), "step_sizes": (1e-4, 0.2)})
OPTIONS = [
    {"etas": etas, "step_sizes": sizes, "maximize": mx}
    for etas, sizes, mx in itertools.product(((0.5, 1.2), (0.3, 1.5)), ((1e-6, 50), (1e-3, 0.02)),
                                             (False, True))
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_matches_torch(options, dtype, record_property):
    record_property("deviation", compare(ours.Rprop, torch.optim.Rprop, dtype, GROUPS, **options))


@settings(max_examples=15, deadline=None)
@given(lr=st.floats(1e-4, 0.5), eta_minus=st.floats(0.01, 0.99), eta_plus=st.floats(1.01, 3),
       min_size=st.floats(0, 1e-3), max_size=st.floats(1e-3, 10))
def test_matches_torch_over_hyperparameters(lr, eta_minus, eta_plus, min_size, max_size):
    compare(ours.Rprop, torch.optim.Rprop, torch.float64, ({}, {"lr": lr / 2}), steps=20, lr=lr,
            etas=(eta_minus, eta_plus), step_sizes=(min_size, max_size))


def test_defaults_match_torch():
    params = [torch.zeros(1, requires_grad=True)]
    theirs = torch.optim.Rprop(params).defaults
    assert ours.Rprop(params).defaults == {k: theirs[k] for k in ours.Rprop(params).defaults}


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_resumes(dtype, record_property):
    record_property("deviation", assert_resumes(ours.Rprop, torch.optim.Rprop, dtype, GROUPS))


def test_bad_arguments_raise_like_torch():
    assert_same_errors(ours.Rprop, torch.optim.Rprop, [
        {"lr": -1e-2}, {"etas": (0.0, 1.2)}, {"etas": (1.0, 1.2)}, {"etas": (0.5, 1.0)},
        {"etas": (1.2, 0.5)},
    ])
