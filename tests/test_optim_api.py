"""Behaviour every helpers.optim class shares with torch.optim: signature and defaults,
closures, skipped params, add_param_group, argument errors."""

import inspect

import pytest
import torch
from torch_compare import DTYPES, TOL, assert_same_errors, closure_for, deviation, make_params

import helpers.optim as ours

PAIRS = [
    (ours.SGD, torch.optim.SGD),
    (ours.Adagrad, torch.optim.Adagrad),
    (ours.RMSprop, torch.optim.RMSprop),
    (ours.Adam, torch.optim.Adam),
    (ours.AdamW, torch.optim.AdamW),
    (ours.Adamax, torch.optim.Adamax),
    (ours.NAdam, torch.optim.NAdam),
    (ours.RAdam, torch.optim.RAdam),
]
ALL = [cls for cls, _ in PAIRS] + [ours.Lion]
NOT_SUPPORTED = {"foreach", "fused", "capturable", "differentiable"}
FOREACH = {ours.SGD, ours.Adam, ours.AdamW}  # these take foreach=True (the multi-tensor step)
ids = [cls.__name__ for cls in ALL]
pair_ids = [cls.__name__ for cls, _ in PAIRS]

BAD = [{"lr": -1e-3}, {"weight_decay": -0.1}]
BAD_EPS = [{"eps": -1e-8}]
BAD_BETAS = [{"betas": (-0.1, 0.999)}, {"betas": (1.0, 0.999)}, {"betas": (0.9, 1.0)}, {"betas": (0.9, -0.5)}]
BAD_ARGUMENTS = {
    ours.SGD: BAD
    + [{"momentum": -0.9}, {"nesterov": True}, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}],
    ours.Adagrad: BAD + BAD_EPS + [{"lr_decay": -0.1}, {"initial_accumulator_value": -1.0}],
    ours.RMSprop: BAD + BAD_EPS + [{"momentum": -0.5}, {"alpha": -0.99}],
    ours.Adam: BAD + BAD_EPS + BAD_BETAS,
    ours.AdamW: BAD + BAD_EPS + BAD_BETAS,
    ours.Adamax: BAD + BAD_EPS + BAD_BETAS,
    ours.NAdam: BAD + BAD_EPS + BAD_BETAS + [{"momentum_decay": -4e-3}],
    ours.RAdam: BAD + BAD_EPS + BAD_BETAS,
}


@pytest.mark.parametrize(("cls", "theirs"), PAIRS, ids=pair_ids)
def test_signature_and_defaults_match_torch(cls, theirs):
    """Same argument names, defaults and positions as torch, minus the unsupported flags."""
    mine = inspect.signature(cls).parameters
    torch_params = inspect.signature(theirs).parameters
    unsupported = NOT_SUPPORTED - ({"foreach"} if cls in FOREACH else set())
    assert set(torch_params) - set(mine) == unsupported & set(torch_params)
    for name, p in mine.items():
        q = torch_params[name]
        assert p.default == q.default, f"{name}: default {p.default} vs torch's {q.default}"
        # RMSprop's maximize is positional in torch only after capturable and foreach
        if not (cls is ours.RMSprop and name == "maximize"):
            assert p.kind == q.kind, f"{name}: {p.kind} vs torch's {q.kind}"
    params = [torch.zeros(2, requires_grad=True)]
    expected = {k: v for k, v in theirs(params).defaults.items() if k not in unsupported}
    assert cls(params).defaults == expected


def test_lion_defaults_are_the_papers():
    assert ours.Lion([torch.zeros(1, requires_grad=True)]).defaults == {
        "lr": 1e-4,
        "betas": (0.9, 0.99),
        "weight_decay": 0.0,
        "maximize": False,
    }


@pytest.mark.parametrize("cls", ALL, ids=ids)
def test_bad_arguments_raise_value_error(cls):
    if cls is ours.Lion:
        for kwargs in BAD + BAD_BETAS:
            with pytest.raises(ValueError, match="Invalid"):
                cls([torch.zeros(2, requires_grad=True)], **kwargs)
    else:
        assert_same_errors(cls, dict(PAIRS)[cls], BAD_ARGUMENTS[cls])


@pytest.mark.parametrize("cls", ALL, ids=ids)
def test_step_evaluates_closure_with_grad_enabled_and_returns_its_loss(cls):
    p = torch.ones(3, requires_grad=True)
    opt = cls([p], lr=0.1)
    seen = []

    def closure():
        seen.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = (p**2).sum()  # needs autograd: fails if grad mode were off
        loss.backward()
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert seen == [True]
    assert loss.item() == 3.0
    assert (p < 1).all(), "the step did not move p downhill"
    assert opt.step() is None  # no closure: no loss


@pytest.mark.parametrize("cls", ALL, ids=ids)
def test_param_without_grad_is_left_alone(cls):
    used, unused = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = cls([used, unused], lr=0.1, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        (used**2).sum().backward()
        opt.step()
    assert torch.equal(unused, torch.ones(2))
    fresh = cls([torch.ones(3), torch.ones(2)]).state  # Adagrad makes its state up front
    state, untouched = opt.state.get(unused, {}), list(fresh.values())[1] if fresh else {}
    assert state.keys() == untouched.keys(), "state changed for a param without grad"
    assert all(torch.equal(state[k], untouched[k]) for k in state)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("cls", "theirs"), PAIRS, ids=pair_ids)
def test_add_param_group_mid_run_matches_torch(cls, theirs, dtype):
    """One group for 10 steps, then a second group with other hyperparameters."""
    runs = []
    for opt_class in (cls, theirs):
        params = make_params(dtype)
        opt = opt_class(params[:2], lr=0.01)
        for t in range(20):
            if t == 10:
                opt.add_param_group({"params": params[2:], "lr": 0.03, "weight_decay": 0.1})
            opt.step(closure_for(opt, params if t >= 10 else params[:2], t))
        runs.append(params)
    for a, b in zip(*runs):
        assert deviation(a, b) <= TOL[dtype]
