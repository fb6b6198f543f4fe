"""helpers.lr_range_test against independent oracles: the closed-form lr grid, a
hand-written EMA, gradient descent on a quadratic simulated in plain Python, and
the model and optimizer as they were before the test."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers.lr_range_test import RangeTestResult, lr_range_test


class Scripted(nn.Module):
    """A model whose loss is the batch's y: the losses are whatever the test scripts."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.w * x


def scripted_loss(out, y):
    return y + 0 * out


def scripted(losses):
    return [(torch.tensor(1.0), torch.tensor(float(v), dtype=torch.float64)) for v in losses]


def test_the_lrs_are_the_closed_form_and_every_group_keeps_its_ratio():
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD([{"params": [model.weight], "lr": 0.5},
                                 {"params": [model.bias], "lr": 0.05}])
    seen = []

    def loss_fn(out, y):
        seen.append([g["lr"] for g in optimizer.param_groups])
        return 0 * out.sum() + 1.0

    result = lr_range_test(model, loss_fn, [(torch.ones(1, 2), None)], optimizer,
                           start_lr=1e-5, end_lr=3.0, num_steps=25)
    expected = [math.exp(math.log(1e-5) + i / 24 * (math.log(3.0) - math.log(1e-5)))
                for i in range(25)]
    assert result.lrs[0] == 1e-5 and len(result.lrs) == 25
    np.testing.assert_allclose(result.lrs, expected, rtol=1e-13)
    assert [g0 for g0, _ in seen] == list(result.lrs)
    np.testing.assert_allclose([g1 for _, g1 in seen], np.array(expected) / 10, rtol=1e-13)
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.05]


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.98])
def test_the_smoothing_is_the_bias_corrected_ema(beta):
    rng = np.random.default_rng(0)
    values = list(1 + rng.random(40))
    result = lr_range_test(Scripted(), scripted_loss, scripted(values),
                           torch.optim.SGD(Scripted().parameters(), lr=1.0), num_steps=40,
                           smoothing=beta)
    assert result.losses == tuple(values)
    # s_i = Σ_j (1−β) β^(i−j) L_j / Σ_j (1−β) β^(i−j): a weighted mean, the weights summed by hand
    for i, s in enumerate(result.smoothed):
        weights = [beta ** (i - j) for j in range(i + 1)]
        hand = sum(w * v for w, v in zip(weights, values)) / sum(weights)
        assert s == pytest.approx(hand, rel=1e-12)


def quadratic_run(a, lrs, theta0, beta, diverge):
    """SGD on f(θ) = a/2·θ² in plain Python: the index of the step that stops the test."""
    theta, average, best = theta0, 0.0, math.inf
    for i, lr in enumerate(lrs):
        loss = a / 2 * theta**2
        average = beta * average + (1 - beta) * loss
        s = average / (1 - beta ** (i + 1))
        best = min(best, s)
        if not math.isfinite(s) or s > diverge * best:
            return i
        theta -= lr * a * theta
    return None


@pytest.mark.parametrize(("a", "beta", "diverge"), [
    (3.0, 0.98, 4.0), (3.0, 0.0, 4.0), (0.2, 0.9, 2.0), (50.0, 0.98, 1.5), (7.0, 0.5, 10.0),
])
def test_on_a_quadratic_the_stop_comes_after_the_first_lr_above_2_over_a(a, beta, diverge):
    class Quadratic(nn.Module):
        def __init__(self):
            super().__init__()
            self.theta = nn.Parameter(torch.tensor(1.5, dtype=torch.float64))

        def forward(self, x):
            return self.theta

    model = Quadratic()
    result = lr_range_test(model, lambda theta, y: a / 2 * theta**2, [(None, None)],
                           torch.optim.SGD(model.parameters(), lr=1.0), start_lr=1e-4,
                           end_lr=1e3, num_steps=80, smoothing=beta, diverge=diverge)
    grid = [1e-4 * 1e7 ** (i / 79) for i in range(80)]
    first_unstable = next(i for i, lr in enumerate(grid) if lr > 2 / a)
    stop = len(result.lrs) - 1
    assert first_unstable < stop < 79  # the update with lr > 2/a made the loss grow; an early stop
    assert stop == quadratic_run(a, grid, 1.5, beta, diverge)
    assert result.suggestion() < 2 / a and result.min_loss_lr / 10 < 2 / a  # both stable lrs
    assert model.theta.item() == 1.5


def test_model_and_optimizer_are_restored_bit_for_bit():
    def adam(model):
        return torch.optim.Adam([{"params": model[0].parameters(), "lr": 1e-3},
                                 {"params": model[3].parameters(), "lr": 3e-4}],
                                weight_decay=0.01)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = adam(model)
    batches = [(torch.randn(16, 4), torch.randn(16, 1)) for _ in range(5)]

    def train(model, optimizer, steps):
        for x, y in batches[:steps]:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()

    train(model, optimizer, 3)  # Adam's state filled, gradients and BN statistics present
    twin, grads = copy.deepcopy(model), [p.grad.clone() for p in model.parameters()]
    twin_optimizer = adam(twin)
    twin_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    before = copy.deepcopy(optimizer.state_dict())

    result = lr_range_test(model, nn.functional.mse_loss, batches, optimizer, num_steps=30)
    assert len(result.lrs) > 3
    for p, q in zip(model.state_dict().values(), twin.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    for p, grad in zip(model.parameters(), grads, strict=True):
        assert torch.equal(p.grad, grad)
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for k, state in before["state"].items():
        assert after["state"][k].keys() == state.keys()
        assert all(torch.equal(after["state"][k][key], v) for key, v in state.items())

    train(model, optimizer, 5), train(twin, twin_optimizer, 5)  # and both carry on alike
    for p, q in zip(model.state_dict().values(), twin.state_dict().values(), strict=True):
        assert torch.equal(p, q)


def test_an_empty_optimizer_state_stays_empty_and_none_grads_stay_none():
    model = nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    lr_range_test(model, nn.functional.mse_loss, [(torch.ones(2, 3), torch.zeros(2, 1))],
                  optimizer, num_steps=5)
    assert not optimizer.state and all(p.grad is None for p in model.parameters())


def test_restored_even_when_the_loss_raises():
    model = nn.Linear(3, 1)
    weight = model.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("boom")
        return out.pow(2).sum()

    with pytest.raises(RuntimeError, match="boom"):
        lr_range_test(model, loss_fn, [(torch.ones(2, 3), None)], optimizer, start_lr=0.1,
                      end_lr=1.0, num_steps=10)
    assert torch.equal(model.weight, weight) and optimizer.param_groups[0]["lr"] == 0.1


class Passes:
    """A re-iterable that counts how often it is iterated, like a DataLoader."""

    def __init__(self, items):
        self.items, self.passes = items, 0

    def __iter__(self):
        self.passes += 1
        return iter(self.items)


def test_short_batches_are_cycled():
    values = [1.0, 1.25, 1.5]
    for batches in (scripted(values), iter(scripted(values)), Passes(scripted(values))):
        result = lr_range_test(Scripted(), scripted_loss, batches,
                               torch.optim.SGD(Scripted().parameters(), lr=1.0), num_steps=10)
        assert result.losses == tuple(values * 4)[:10]
    assert batches.passes == 4


def test_a_nan_loss_stops_and_is_recorded():
    values = [1.0, 0.9, 0.8, 0.7, float("nan"), 0.5, 0.4]
    result = lr_range_test(Scripted(), scripted_loss, scripted(values),
                           torch.optim.SGD(Scripted().parameters(), lr=1.0), num_steps=7,
                           smoothing=0.5)
    assert len(result.losses) == 5 and math.isnan(result.losses[-1])
    assert math.isnan(result.smoothed[-1]) and result.min_loss_lr == result.lrs[3]
    assert result.suggestion() in result.lrs[:4]


def test_an_infinite_loss_stops():
    result = lr_range_test(Scripted(), scripted_loss, scripted([1.0, 1.0, float("inf"), 1.0]),
                           torch.optim.SGD(Scripted().parameters(), lr=1.0), num_steps=4)
    assert len(result.losses) == 3


def test_the_suggestion_is_the_steepest_descent_against_log_lr():
    lrs = tuple(1e-4 * 10 ** (i / 4) for i in range(17))
    smoothed = tuple(2.0 - math.tanh(2 * (i - 9.3)) + 0.01 * i for i in range(17))
    result = RangeTestResult(lrs, smoothed, smoothed)
    slopes = np.gradient(np.array(smoothed), np.log(np.array(lrs)))
    assert result.suggestion() == result.suggested_lr == lrs[int(np.argmin(slopes))] == lrs[9]
    assert result.min_loss_lr == lrs[int(np.argmin(smoothed))]
    with pytest.raises(ValueError, match="at least 2"):
        RangeTestResult(lrs[:1], smoothed[:1], smoothed[:1]).suggestion()
    with pytest.raises(AttributeError):
        result.lrs = ()  # frozen


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"start_lr": 0.0}, "0 < start_lr < end_lr"),
    ({"start_lr": -1e-3}, "0 < start_lr < end_lr"),
    ({"start_lr": 1.0, "end_lr": 1.0}, "0 < start_lr < end_lr"),
    ({"start_lr": 1.0, "end_lr": 0.1}, "0 < start_lr < end_lr"),
    ({"num_steps": 1}, "num_steps must be an integer ≥ 2"),
    ({"num_steps": 10.0}, "num_steps must be an integer ≥ 2"),
    ({"smoothing": 1.0}, r"smoothing must be in \[0, 1\)"),
    ({"smoothing": -0.1}, r"smoothing must be in \[0, 1\)"),
    ({"diverge": 1.0}, "diverge must be > 1"),
    ({"diverge": float("nan")}, "diverge must be > 1"),
    ({"batches": []}, "batches is empty"),
    ({"lr": 0.0}, "param group 0 needs an lr > 0"),
])
def test_invalid_arguments_raise_value_error(kwargs, message):
    model = Scripted()
    optimizer = torch.optim.SGD(model.parameters(), lr=kwargs.pop("lr", 1.0))
    batches = kwargs.pop("batches", scripted([1.0]))
    with pytest.raises(ValueError, match=message):
        lr_range_test(model, scripted_loss, batches, optimizer, **kwargs)
    assert model.w.item() == 0.0 and optimizer.param_groups[0]["lr"] in (0.0, 1.0)
