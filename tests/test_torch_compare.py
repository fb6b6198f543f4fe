"""The comparison harness itself: right gradients, and it catches what it must."""

import pytest
import torch
from torch_compare import (
    SHAPES,
    SKIPPED,
    _data,
    assert_resumes,
    closure_for,
    compare,
    deviation,
    make_params,
)


class _NoOpt:
    def zero_grad(self, set_to_none=True):
        pass


@pytest.mark.parametrize("t", [0, 2])
def test_closure_gives_the_gradient_of_the_documented_loss(t):
    params = make_params(torch.float64)
    loss = closure_for(_NoOpt(), params, t)()
    _, h, c, noise = _data(SHAPES, torch.float64)
    present = [i for i in range(len(SHAPES)) if not (i == SKIPPED and t % 3 == 2)]
    copies = [p.detach().clone().requires_grad_() for p in params]
    expected = sum(
        (0.5 * h[i] * (copies[i] - c[i]) ** 2 + noise[t][i] * (copies[i] - c[i])).sum() for i in present
    )
    expected.backward()
    assert torch.allclose(loss, expected, rtol=1e-14)
    for i, (p, q) in enumerate(zip(params, copies)):
        if i in present:
            assert torch.allclose(p.grad, q.grad, rtol=1e-14)
        else:
            assert p.grad is None


def test_compare_catches_a_relative_error_of_1e_10():
    def slightly_off(params, lr):
        return torch.optim.SGD(params, lr=lr * (1 + 1e-10))

    assert compare(torch.optim.SGD, torch.optim.SGD, torch.float64, lr=0.01) == 0.0
    with pytest.raises(AssertionError, match="params deviate"):
        compare(slightly_off, torch.optim.SGD, torch.float64, lr=0.01)


def test_compare_catches_a_wrong_state_dtype():
    class Float64Step(torch.optim.Adam):
        def step(self, closure=None):
            loss = super().step(closure)
            for state in self.state.values():
                state["step"] = state["step"].double()
            return loss

    with pytest.raises(AssertionError, match="'step'"):
        compare(Float64Step, torch.optim.Adam, torch.float32)


def test_assert_resumes_catches_a_state_dict_without_state():
    class Forgetful(torch.optim.Adam):
        def state_dict(self):
            return {**super().state_dict(), "state": {}}

    with pytest.raises(AssertionError, match="resum"):
        assert_resumes(Forgetful, torch.optim.Adam, torch.float64)


def test_deviation_counts_nan_only_where_torch_has_none():
    nan, inf = float("nan"), float("inf")
    assert deviation(torch.tensor([1.0, nan, inf]), torch.tensor([1.0, nan, inf])) == 0.0
    assert deviation(torch.tensor([1.0, nan]), torch.tensor([1.0, 2.0])) == inf
    assert deviation(torch.tensor([1.0, 2.0]), torch.tensor([1.0, nan])) == inf
    assert deviation(torch.tensor([0.0, 1e-3]), torch.tensor([0.0, 0.0])) == inf
    assert deviation(torch.tensor([2.0, 1.0]), torch.tensor([4.0, 1.0])) == 0.5
