# ruff: noqa: E701, E702, E501, E402, B007  (wrong answers written compactly, one idea a line)
"""Red team, notebook 03 (momentum): plausible wrong answers written from the student notebook's statement.

Each must fail and any likely cause it is told must be its own mistake (see redteam.py).
"""
import pytest
from redteam import assert_fails, cases

from helpers.exercises._per_parameter import PerParameter


class _Momentum(PerParameter):
    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay})


class MomentumBufferIsGrad(_Momentum):  # the buffer aliases p.grad on the first step
    def update(self, p, grad, state, group):
        g = grad + group["weight_decay"] * p if group["weight_decay"] else grad
        mu, tau = group["momentum"], group["dampening"]
        if mu:
            if "momentum_buffer" not in state: state["momentum_buffer"] = g
            else: state["momentum_buffer"].mul_(mu).add_(g, alpha=1 - tau)
            g = state["momentum_buffer"]
        p.add_(g, alpha=-group["lr"])
class MomentumDecayAfterBuffer(_Momentum):  # weight decay added to the step, not to the buffer
    def update(self, p, grad, state, group):
        mu, tau = group["momentum"], group["dampening"]; g = grad
        if mu:
            if "momentum_buffer" not in state: state["momentum_buffer"] = g.clone()
            else: state["momentum_buffer"].mul_(mu).add_(g, alpha=1 - tau)
            g = state["momentum_buffer"]
        p.add_(g + group["weight_decay"] * p, alpha=-group["lr"])
class MomentumDampenedFirst(_Momentum):  # zeros start, but only dampened after the first step
    def update(self, p, grad, state, group):
        g = grad + group["weight_decay"] * p
        mu, tau = group["momentum"], group["dampening"]
        if mu:
            b = state.setdefault("momentum_buffer", p.new_zeros(p.shape)); b.mul_(mu).add_(g, alpha=1 - tau); g = b
        p.add_(g, alpha=-group["lr"])


WRONG = [
    ("03.3", MomentumBufferIsGrad, 'the buffer is the gradient tensor itself', False),
    ("03.3", MomentumDecayAfterBuffer, 'weight decay is added after the momentum', False),
    ("03.3", MomentumDampenedFirst, 'your first step is dampened', False),
]


@pytest.mark.parametrize(("exercise_id", "candidate", "cause", "hidden_only"), cases(WRONG))
def test_a_wrong_answer_fails_with_its_own_cause(monkeypatch, exercise_id, candidate, cause, hidden_only):
    assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only)
