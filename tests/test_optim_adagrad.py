import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import assert_resumes, cases, compare

import helpers.optim as ours

GROUPS = ({"lr": 0.1}, {"lr": 0.03, "lr_decay": 0.02, "weight_decay": 0.05})
OPTIONS = [
    {},
    {"lr_decay": 0.05},
    {"weight_decay": 1e-2},
    {"initial_accumulator_value": 0.1},
    {"eps": 1e-3},
    {"maximize": True},
    {"lr_decay": 0.05, "weight_decay": 1e-2, "initial_accumulator_value": 0.1, "eps": 1e-3, "maximize": True},
]


@pytest.mark.parametrize(("options", "dtype"), cases(OPTIONS), ids=str)
def test_matches_torch(options, dtype):
    compare(ours.Adagrad, torch.optim.Adagrad, dtype, GROUPS, **options)


@settings(max_examples=8, deadline=None)
@given(
    lr=st.floats(0, 1),
    lr_decay=st.floats(0, 1),
    weight_decay=st.floats(0, 0.1),
    initial_accumulator_value=st.floats(0, 1),
    eps=st.floats(1e-12, 1e-2),
)
def test_matches_torch_over_hyperparameters(lr, lr_decay, weight_decay, initial_accumulator_value, eps):
    compare(
        ours.Adagrad,
        torch.optim.Adagrad,
        torch.float64,
        ({}, {"lr": lr / 2}),
        steps=25,
        lr=lr,
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        initial_accumulator_value=initial_accumulator_value,
        eps=eps,
    )


def test_state_dict_resumes():
    assert_resumes(ours.Adagrad, torch.optim.Adagrad, torch.float32, GROUPS, initial_accumulator_value=0.1)


def test_state_exists_from_construction_like_torch():
    """torch.optim.Adagrad fills its state in the constructor; so does ours."""
    p = torch.zeros(2, requires_grad=True)
    state = ours.Adagrad([p], initial_accumulator_value=0.5).state_dict()["state"]
    expected = torch.optim.Adagrad([p], initial_accumulator_value=0.5).state_dict()["state"]
    assert state.keys() == expected.keys() == {0}
    for key, value in expected[0].items():
        assert torch.equal(state[0][key], value) and state[0][key].dtype == value.dtype
