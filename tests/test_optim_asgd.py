import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import DTYPES, assert_resumes, assert_same_errors, compare

import helpers.optim as ours

# t0 = 10: averaging starts within the run, so ax and mu are exercised
GROUPS = ({"lr": 0.05, "t0": 10}, {"lr": 0.02, "lambd": 1e-2, "alpha": 0.5, "t0": 20})
OPTIONS = [
    {"t0": t0, "weight_decay": wd, "maximize": mx}
    for t0, wd, mx in itertools.product((1e6, 5), (0, 0.1), (False, True))
] + [{"lambd": 0.05, "alpha": 1.0}]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_matches_torch(options, dtype, record_property):
    groups = tuple({k: v for k, v in g.items() if k not in options} for g in GROUPS)
    record_property("deviation", compare(ours.ASGD, torch.optim.ASGD, dtype, groups, **options))


@settings(max_examples=15, deadline=None)
@given(lr=st.floats(0, 0.1), lambd=st.floats(0, 0.1), alpha=st.floats(0, 1),
       t0=st.integers(0, 30), weight_decay=st.floats(0, 0.5))
def test_matches_torch_over_hyperparameters(lr, lambd, alpha, t0, weight_decay):
    compare(ours.ASGD, torch.optim.ASGD, torch.float64, ({}, {"lr": lr / 2}), steps=20, lr=lr,
            lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay)


def test_defaults_match_torch():
    params = [torch.zeros(1, requires_grad=True)]
    theirs = torch.optim.ASGD(params).defaults
    assert ours.ASGD(params).defaults == {k: theirs[k] for k in ours.ASGD(params).defaults}


def test_average_is_mean_of_iterates_after_t0():
    """Independent of torch: ax is the plain mean of the iterates from step t0 + 2 on."""
    p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = ours.ASGD([p], lr=0.1, t0=3)
    iterates = []
    for _ in range(10):
        opt.zero_grad()
        (p**2).sum().backward()
        opt.step()
        iterates.append(p.detach().clone())
    expected = torch.stack(iterates[4:]).mean(0)  # steps 5..10
    # not closer: like torch, mu = 1/(t - 1 - t0) is stored in float32
    torch.testing.assert_close(opt.state[p]["ax"], expected, rtol=1e-7, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_resumes(dtype, record_property):
    record_property("deviation", assert_resumes(ours.ASGD, torch.optim.ASGD, dtype, GROUPS,
                                                weight_decay=0.1))


def test_bad_arguments_raise_like_torch():
    assert_same_errors(ours.ASGD, torch.optim.ASGD, [{"lr": -0.01}, {"weight_decay": -0.1}])
