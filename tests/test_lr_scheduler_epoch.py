"""The deprecated ``scheduler.step(epoch)`` of helpers.lr_scheduler against torch 2.13.

Every scheduler that accepts it in torch is driven through the same mix of plain
``step()`` calls and jumps (forward, backward, repeated, to 0) in both libraries;
after each call every group's lr, momentum and ``get_last_lr()``, ``last_epoch``
and the warnings raised (torch's exact text) must agree. The composites, which
torch does not let take an epoch, must refuse it as torch does.
"""

import warnings

import pytest
import torch
import torch.optim.lr_scheduler as T

import helpers.lr_scheduler as H
from helpers.lr_scheduler.base import EPOCH_DEPRECATION_WARNING

pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")

# None is a plain step(); a number is step(number).
EPOCHS = [None, None, 5, None, None, 3, 3, 20, None, 0, None, 47, None, 12, None]
RTOL = 1e-12


def make_optimizer():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    groups = [{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.03, "momentum": 0.5}]
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


CASES = {
    "LambdaLR": lambda M, o: M.LambdaLR(o, [lambda t: 0.95**t, lambda t: 1 / (1 + t // 10)]),
    "MultiplicativeLR": lambda M, o: M.MultiplicativeLR(o, lambda t: 0.97 if t % 3 else 1.02),
    "StepLR": lambda M, o: M.StepLR(o, 7, gamma=0.5),
    "MultiStepLR": lambda M, o: M.MultiStepLR(o, [4, 10, 10, 30], gamma=0.3),
    "ConstantLR": lambda M, o: M.ConstantLR(o, factor=0.5, total_iters=10),
    "LinearLR": lambda M, o: M.LinearLR(o, start_factor=0.1, total_iters=20),
    "ExponentialLR": lambda M, o: M.ExponentialLR(o, 0.9),
    "PolynomialLR": lambda M, o: M.PolynomialLR(o, total_iters=30, power=2.0),
    "CosineAnnealingLR": lambda M, o: M.CosineAnnealingLR(o, T_max=25, eta_min=1e-3),
    "CosineAnnealingWarmRestarts": lambda M, o: M.CosineAnnealingWarmRestarts(o, 4, 2, 1e-3),
    "CyclicLR": lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=6, mode="triangular2"),
    "OneCycleLR": lambda M, o: M.OneCycleLR(o, max_lr=0.1, total_steps=60),
}


def drive(M, make, epochs):
    """Each call's (lrs, momenta, last lr, last_epoch, warning texts)."""
    optimizer = make_optimizer()
    scheduler = make(M, optimizer)
    trace = []
    for epoch in epochs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scheduler.step() if epoch is None else scheduler.step(epoch)
        texts = sorted(str(w.message) for w in caught if "before `optimizer.step()`" not in str(w.message))
        groups = optimizer.param_groups
        trace.append(([g["lr"] for g in groups], [g["momentum"] for g in groups],
                      list(scheduler.get_last_lr()), scheduler.last_epoch, texts))
    return trace


def assert_same(ours, theirs):
    for call, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for x, y in zip(a[0] + a[1] + a[2], b[0] + b[1] + b[2], strict=True):
            assert abs(x - y) <= RTOL * abs(y), f"call {call}: ours {a}, torch {b}"
        assert a[3:] == b[3:], f"call {call}: ours {a}, torch {b}"


def test_the_warning_is_torchs_text():
    assert EPOCH_DEPRECATION_WARNING == T.EPOCH_DEPRECATION_WARNING


@pytest.mark.parametrize("name", list(CASES))
def test_step_epoch_as_torch(name):
    ours, theirs = drive(H, CASES[name], EPOCHS), drive(T, CASES[name], EPOCHS)
    assert_same(ours, theirs)
    if name != "CosineAnnealingWarmRestarts":  # its epoch is not deprecated, in torch either
        assert ours[2][4] == [T.EPOCH_DEPRECATION_WARNING]
    assert ours[0][4] == []


def test_fractional_epochs_of_warm_restarts():
    epochs = [0.5, 1.25, None, 7.9, 3.0, None, 30.5]
    make = CASES["CosineAnnealingWarmRestarts"]
    assert_same(drive(H, make, epochs), drive(T, make, epochs))


def test_plateau_epoch_as_torch():
    metrics = [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    epochs = [None, 4, None, None, 2, 2, None, 10, None, None, 0, None]
    traces = []
    for M in (H, T):
        optimizer = make_optimizer()
        scheduler = M.ReduceLROnPlateau(optimizer, patience=2, factor=0.5)
        trace = []
        for metric, epoch in zip(metrics, epochs, strict=True):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                scheduler.step(metric) if epoch is None else scheduler.step(metric, epoch)
            trace.append(([g["lr"] for g in optimizer.param_groups], [], scheduler.get_last_lr(),
                          scheduler.last_epoch, [str(w.message) for w in caught]))
        traces.append(trace)
    assert_same(*traces)
    assert traces[0][1][4] == [T.EPOCH_DEPRECATION_WARNING]


def test_warmup_stable_decay_jumps_to_its_closed_form():
    optimizer = make_optimizer()
    scheduler = H.WarmupStableDecay(optimizer, warmup_steps=5, stable_steps=10, decay_steps=20)
    for epoch in (12, 3, 30, 0, 40):
        with pytest.warns(UserWarning, match="The epoch parameter"):
            scheduler.step(epoch)
        expected = [lr_0 * scheduler.factor(epoch) for lr_0 in scheduler.base_lrs]
        assert [g["lr"] for g in optimizer.param_groups] == expected
        assert scheduler.last_epoch == epoch
    scheduler.step()
    assert scheduler.last_epoch == 41


@pytest.mark.parametrize("composite", ["SequentialLR", "ChainedScheduler"])
def test_composites_refuse_an_epoch_as_torch(composite):
    for M in (H, T):
        o = make_optimizer()
        stages = [M.LinearLR(o, 0.1, total_iters=5), M.ExponentialLR(o, 0.9)]
        scheduler = (M.SequentialLR(o, stages, milestones=[5]) if composite == "SequentialLR"
                     else M.ChainedScheduler(stages))
        with pytest.raises(TypeError):
            scheduler.step(3)
