"""helpers.optim's foreach=True path (the multi-tensor update): the numbers of torch's
foreach and fused steps, bit for bit those of our per-parameter loop, the gradients left
alone, and a number of aten calls per step that does not grow with the parameters."""

from functools import partial

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch_compare import assert_resumes, build, cases, compare, run

import helpers.optim as ours
from helpers.checking_tools import OptimCase, compare_optimizer

ADAM_GROUPS = ({"lr": 0.01}, {"lr": 0.003, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0.2})
ADAM_OPTIONS = [
    {},
    {"betas": (0.5, 0.9), "eps": 1e-3},
    {"weight_decay": 0.1},
    {"weight_decay": 0.1, "decoupled_weight_decay": True},
    {"amsgrad": True},
    {"maximize": True},
    {"betas": (0.5, 0.9), "weight_decay": 0.1, "amsgrad": True, "maximize": True},
    {"weight_decay": 0.1, "decoupled_weight_decay": True, "amsgrad": True, "maximize": True},
]
SGD_GROUPS = ({"lr": 0.05}, {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.03})
SGD_OPTIONS = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "dampening": 0.3},
    {"momentum": 0.9, "nesterov": True},
    {"weight_decay": 1e-2, "maximize": True},
    {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2, "maximize": True},
]
FUSED_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def foreach(cls):
    return partial(cls, foreach=True)


@pytest.mark.parametrize(("options", "dtype"), cases(ADAM_OPTIONS), ids=str)
def test_foreach_adam_matches_torchs_foreach_and_fused(options, dtype):
    compare(foreach(ours.Adam), foreach(torch.optim.Adam), dtype, ADAM_GROUPS, steps=25, **options)
    compare(foreach(ours.Adam), partial(torch.optim.Adam, fused=True), dtype, ADAM_GROUPS, steps=25,
            tol=FUSED_TOL[dtype], **options)


@pytest.mark.parametrize("options", [{}, {"amsgrad": True, "maximize": True}], ids=str)
def test_foreach_adamw_matches_torch(options):
    compare(foreach(ours.AdamW), foreach(torch.optim.AdamW), torch.float64, ADAM_GROUPS, **options)
    compare(foreach(ours.AdamW), partial(torch.optim.AdamW, fused=True), torch.float32, ADAM_GROUPS,
            tol=FUSED_TOL[torch.float32], **options)


@pytest.mark.parametrize(("options", "dtype"), cases(SGD_OPTIONS), ids=str)
def test_foreach_sgd_matches_torchs_foreach_and_fused(options, dtype):
    compare(foreach(ours.SGD), foreach(torch.optim.SGD), dtype, SGD_GROUPS, steps=25, **options)
    compare(foreach(ours.SGD), partial(torch.optim.SGD, fused=True), dtype, SGD_GROUPS, steps=25,
            tol=FUSED_TOL[dtype], **options)


def trajectory(cls, dtype, groups, steps=40, **options):
    params, optimizer = build(cls, dtype, groups, **options)
    run(optimizer, params, 0, steps)
    return params, optimizer


@pytest.mark.parametrize(("cls", "groups", "options"), [
    *((ours.Adam, ADAM_GROUPS, o) for o in ADAM_OPTIONS),
    *((ours.AdamW, ADAM_GROUPS, o) for o in ADAM_OPTIONS[:2]),
    *((ours.SGD, SGD_GROUPS, o) for o in SGD_OPTIONS),
], ids=str)
def test_foreach_is_the_per_parameter_loop_bit_for_bit(cls, groups, options):
    loop, loop_opt = trajectory(cls, torch.float32, groups, **options)
    multi, multi_opt = trajectory(foreach(cls), torch.float32, groups, **options)
    assert all(torch.equal(a, b) for a, b in zip(loop, multi))
    for a, b in zip(loop, multi):
        state_a, state_b = loop_opt.state[a], multi_opt.state[b]
        assert state_a.keys() == state_b.keys()
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


class ForeachAdam(ours.Adam):
    def __init__(self, params, **kwargs):
        super().__init__(params, foreach=True, **kwargs)


class TorchForeachAdam(torch.optim.Adam):
    def __init__(self, params, **kwargs):
        super().__init__(params, foreach=True, **kwargs)


class ForeachSGD(ours.SGD):
    def __init__(self, params, **kwargs):
        super().__init__(params, foreach=True, **kwargs)


class TorchForeachSGD(torch.optim.SGD):
    def __init__(self, params, **kwargs):
        super().__init__(params, foreach=True, **kwargs)


def test_foreach_follows_torch_through_lr_changes_new_groups_and_reloads():
    adam = {"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 0.1, "amsgrad": False, "maximize": False}
    compare_optimizer(ForeachAdam, TorchForeachAdam, [
        OptimCase.per_group("Adam", adam, [{**adam, "lr": 0.02, "amsgrad": True},
                                           {**adam, "betas": (0.5, 0.9), "weight_decay": 0.0,
                                            "maximize": True}],
                            {**adam, "lr": 0.005, "weight_decay": 0.3}, grad_none={1: {2, 5}}),
        OptimCase.long_run("Adam 150 steps", lr=0.003, weight_decay=0.1, decoupled_weight_decay=True,
                           dtype=torch.float64),
    ])
    sgd = {"lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01, "maximize": False}
    compare_optimizer(ForeachSGD, TorchForeachSGD, [
        OptimCase.per_group("SGD", sgd, [{**sgd, "lr": 0.02, "momentum": 0.5, "dampening": 0.2},
                                         {**sgd, "momentum": 0.0, "weight_decay": 0.0, "maximize": True}],
                            {**sgd, "lr": 0.01, "weight_decay": 0.1}, grad_none={2: {3}}),
        OptimCase.long_run("SGD 150 steps", lr=0.01, momentum=0.9, nesterov=True, dtype=torch.float64),
    ])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_foreach_state_dict_resumes_with_torch(dtype):
    assert_resumes(foreach(ours.Adam), foreach(torch.optim.Adam), dtype, ADAM_GROUPS, weight_decay=0.1)
    assert_resumes(foreach(ours.SGD), foreach(torch.optim.SGD), dtype, SGD_GROUPS, momentum=0.9)
    assert_resumes(foreach(ours.Adam), ours.Adam, dtype, ADAM_GROUPS, amsgrad=True)  # either path


def test_an_old_state_dict_without_foreach_loads():
    p = torch.zeros(2, requires_grad=True)
    saved = ours.Adam([p]).state_dict()
    del saved["param_groups"][0]["foreach"]
    optimizer = ours.Adam([p])
    optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0]["foreach"] is None


@pytest.mark.parametrize(("cls", "options"), [
    (ours.Adam, {"maximize": True, "weight_decay": 0.1}),
    (ours.SGD, {"momentum": 0.9, "nesterov": True}),  # torch's own foreach SGD adds into .grad here
    (ours.SGD, {"momentum": 0.9, "weight_decay": 0.1, "maximize": True}),
], ids=str)
def test_foreach_leaves_the_gradients_alone(cls, options):
    params = [torch.randn(3, requires_grad=True) for _ in range(3)]
    optimizer = cls(params, lr=0.1, foreach=True, **options)
    for _ in range(3):
        grads = [torch.randn(3) for _ in params]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        optimizer.step()
        assert all(torch.equal(p.grad, g) for p, g in zip(params, grads))


class AtenCalls(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def aten_calls_of_third_step(cls, n, **options):
    params = [torch.randn(4, 3, requires_grad=True) for _ in range(n)]
    optimizer = cls(params, lr=0.1, **options)
    for k in range(3):
        for p in params:
            p.grad = torch.randn(4, 3)
        if k < 2:
            optimizer.step()
    with AtenCalls() as mode:
        optimizer.step()
    # .item() (aten._local_scalar_dense) reads a number: no kernel
    return [c for c in mode.calls if c.startswith("aten.") and c != "aten._local_scalar_dense"]


@pytest.mark.parametrize(("cls", "options"), [
    (ours.Adam, {"amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    (ours.SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
], ids=str)
def test_foreach_calls_do_not_grow_with_the_number_of_parameters(cls, options):
    few, many = (aten_calls_of_third_step(cls, n, foreach=True, **options) for n in (3, 30))
    assert few == many and len(few) <= 12, few
    assert all(c.startswith("aten._foreach_") for c in few)
    loop = aten_calls_of_third_step(cls, 30, **options)
    assert len(loop) >= 30 * 3  # the loop: several calls per parameter
