"""helpers.optim.flat: the flat optimizers give the per-parameter loop's numbers bit for bit
(and torch's), through lr changes, new groups and state_dict round trips; parameters,
gradients and state are views into one buffer per group; a step is a few aten calls."""

import copy

import pytest
import torch
from test_optim_foreach import AtenCalls

import helpers.optim as ours
from helpers.checking_tools import OptimCase, compare_optimizer
from helpers.optim.flat import FlatAdam, FlatAdamW, FlatSGD, flatten_

ADAM = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1, "amsgrad": False,
        "maximize": False}
ADAM_CASES = [
    OptimCase.per_group("Adam", ADAM, [{**ADAM, "lr": 0.02, "eps": 1e-6, "amsgrad": True},
                                       {**ADAM, "betas": (0.5, 0.9), "weight_decay": 0.0, "maximize": True}],
                        {**ADAM, "lr": 0.005, "weight_decay": 0.3}),
    OptimCase.long_run("decoupled, 150 steps", lr=0.003, weight_decay=0.1, decoupled_weight_decay=True,
                       amsgrad=True, dtype=torch.float64),
]
SGD = {"lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01, "maximize": False}
SGD_CASES = [
    OptimCase.per_group("SGD", SGD, [{**SGD, "lr": 0.02, "momentum": 0.5, "dampening": 0.2},
                                     {**SGD, "momentum": 0.0, "weight_decay": 0.0, "maximize": True}],
                        {**SGD, "lr": 0.01, "weight_decay": 0.1}),
    OptimCase.long_run("Nesterov, 150 steps", lr=0.01, momentum=0.9, nesterov=True, dtype=torch.float64),
]


@pytest.mark.parametrize(("flat", "reference", "cases"), [
    (FlatAdam, ours.Adam, ADAM_CASES), (FlatAdam, torch.optim.Adam, ADAM_CASES),
    (FlatSGD, ours.SGD, SGD_CASES), (FlatSGD, torch.optim.SGD, SGD_CASES),
    (FlatAdamW, torch.optim.AdamW, [OptimCase.long_run("AdamW", lr=0.01, maximize=True)]),
], ids=lambda x: getattr(x, "__module__", "") + "." + getattr(x, "__name__", "cases"))
def test_flat_follows_the_reference(flat, reference, cases):
    compare_optimizer(flat, reference, cases)


def steps(cls, groups, n=30, reload_at=None, **options):
    """n steps on fixed gradients (new tensors on odd steps, written in place on even ones)."""
    generator = torch.Generator().manual_seed(3)
    params = [torch.randn(s, generator=generator).requires_grad_() for s in ((4, 3), (5,), (2, 2, 2), (1,))]
    make = lambda: cls([{"params": params[:2], **groups[0]}, {"params": params[2:], **groups[1]}],  # noqa: E731
                       **options)
    optimizer = make()
    for k in range(n):
        for p in params:
            g = torch.randn(p.shape, generator=generator)
            if k % 2 and p.grad is not None:
                p.grad.copy_(g)
            else:
                p.grad = g
        optimizer.step()
        if k == reload_at:
            saved = copy.deepcopy(optimizer.state_dict())
            optimizer = make()
            optimizer.load_state_dict(saved)
    return params, optimizer


@pytest.mark.parametrize(("flat", "loop", "options"), [
    (FlatAdam, ours.Adam, {"amsgrad": True, "weight_decay": 0.1}),
    (FlatAdamW, ours.AdamW, {"maximize": True}),
    (FlatSGD, ours.SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (FlatSGD, ours.SGD, {}),
], ids=str)
def test_flat_is_the_loop_bit_for_bit_and_resumes_exactly(flat, loop, options):
    groups = ({"lr": 0.01}, {"lr": 0.003})
    expected, _ = steps(loop, groups, **options)
    for reload_at in (None, 12):
        got, _ = steps(flat, groups, reload_at=reload_at, **options)
        assert all(torch.equal(a, b) for a, b in zip(expected, got))


def storage(t):
    return t.untyped_storage().data_ptr()


def test_parameters_gradients_and_state_are_views_into_one_buffer_per_group():
    params, optimizer = steps(FlatAdam, ({}, {}), n=2, amsgrad=True)
    for group in optimizer.param_groups:
        first = group["params"][0]
        offsets = [p.storage_offset() for p in group["params"]]
        assert offsets == [sum(q.numel() for q in group["params"][:i]) for i in range(len(offsets))]
        for p in group["params"]:
            assert storage(p) == storage(first) and storage(p.grad) == storage(first.grad)
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                assert storage(optimizer.state[p][key]) == storage(optimizer.state[first][key])
            assert optimizer.state[p]["step"] is optimizer.state[first]["step"]
    assert storage(params[0]) != storage(params[2])  # one buffer per group


def test_backward_writes_into_the_flat_gradient():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    optimizer = FlatSGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(8, 3)
    for _ in range(3):
        optimizer.zero_grad(set_to_none=False)
        model(x).square().mean().backward()
        optimizer.step()
    packed = optimizer._packed[id(optimizer.param_groups[0])][1]
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.equal(packed.grad, expected)
    assert all(storage(p.grad) == storage(packed.grad) for p in model.parameters())


def test_flatten_keeps_objects_values_and_shapes():
    tensors = [torch.randn(2, 3), torch.randn(4), torch.randn(())]
    objects, values = list(tensors), [t.clone() for t in tensors]
    flat = flatten_(tensors)
    assert flat.shape == (11,)
    assert all(t is o and torch.equal(t, v) for t, o, v in zip(tensors, objects, values))
    flat.zero_()
    assert all(not t.any() for t in tensors)


def test_a_partly_missing_gradient_and_mixed_dtypes_are_refused():
    a, b = torch.randn(3, requires_grad=True), torch.randn(2, requires_grad=True)
    optimizer = FlatAdam([a, b])
    a.grad = torch.randn(3)
    with pytest.raises(ValueError, match="parameter 1 of the group has no gradient"):
        optimizer.step()
    optimizer.zero_grad()
    optimizer.step()  # a group without any gradient is skipped
    c = torch.randn(2, dtype=torch.float64, requires_grad=True)
    optimizer = FlatSGD([a, c], lr=0.1)
    a.grad, c.grad = torch.randn(3), torch.randn(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="one dtype and device"):
        optimizer.step()


@pytest.mark.parametrize("cls", [FlatAdam, FlatSGD])
def test_a_flat_step_is_a_few_calls_however_many_parameters(cls):
    counts = []
    for n in (3, 30):
        params = [torch.randn(4, 3, requires_grad=True) for _ in range(n)]
        optimizer = cls(params, lr=0.1, **({"momentum": 0.9} if cls is FlatSGD else {}))
        for _ in range(3):
            for p in params:
                p.grad = torch.randn(4, 3)  # new tensors: copied in with one _foreach_copy_
            with AtenCalls() as mode:
                optimizer.step()
        counts.append([c for c in mode.calls if c.startswith("aten.") and c != "aten._local_scalar_dense"])
    assert counts[0] == counts[1] and len(counts[0]) <= 12, counts
