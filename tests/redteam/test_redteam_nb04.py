# ruff: noqa: E701, E702, E501, E402, B007  (wrong answers written compactly, one idea a line)
"""Red team, notebook 04 (Adam, AdamW, AMSGrad): plausible wrong answers written from the statements.

Each must fail and any likely cause it is told must be its own mistake (see redteam.py).
"""

import pytest
import torch
from redteam import assert_fails, cases

from helpers.exercises._per_parameter import PerParameter
class _Adam(PerParameter):
    decoupled = False; ams = False
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *, maximize=False):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad, "maximize": maximize})
    def update(self, p, grad, state, group):
        g = -grad if group["maximize"] else grad
        b1, b2 = group["betas"]
        if not state:
            state["step"] = 0; state["exp_avg"] = torch.zeros_like(p); state["exp_avg_sq"] = torch.zeros_like(p)
            if group["amsgrad"]: state["max_exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1; t = self.t(state["step"])
        if group["weight_decay"]:
            if self.decoupled: p.mul_(1 - group["lr"] * group["weight_decay"])
            else: g = g + group["weight_decay"] * p
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, value=1 - b2)
        if group["amsgrad"]:
            torch.maximum(state["max_exp_avg_sq"], self.vmax_source(v), out=state["max_exp_avg_sq"]); v = state["max_exp_avg_sq"]
        denom = self.denom(v, 1 - b2**t, group["eps"])
        p.addcdiv_(m, denom, value=-group["lr"] / (1 - b1**t))
    def t(self, step): return step
    def denom(self, v, c2, eps): return (v / c2).sqrt() + eps
    def vmax_source(self, v): return v
class AdamStepFromZero(_Adam):
    def t(self, step): return step + 1
class AdamWDecayAfter(_Adam):
    decoupled = True
    def update(self, p, grad, state, group):
        wd = group["weight_decay"]; group["weight_decay"] = 0
        try: super().update(p, grad, state, group)
        finally: group["weight_decay"] = wd
        p.mul_(1 - group["lr"] * wd)
class AmsMaxOfM(_Adam):  # keeps the max of v, but divides by the current v
    decoupled = True
    def vmax_source(self, v): return v
    def update(self, p, grad, state, group):
        group_ams = group["amsgrad"]; group["amsgrad"] = False
        try: super().update(p, grad, state, group)
        finally: group["amsgrad"] = group_ams
        if group_ams:
            state.setdefault("max_exp_avg_sq", torch.zeros_like(p)); torch.maximum(state["max_exp_avg_sq"], state["exp_avg_sq"], out=state["max_exp_avg_sq"])


def _adamw(cls):
    class W(cls):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *, maximize=False):
            super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
    W.__name__ = cls.__name__
    return W


WRONG = [
    ("04.3", AdamStepFromZero, 'uses t + 1', False),
    ("04.4", _adamw(AdamWDecayAfter), 'you decayed after the Adam step', False),
    ("04.5", _adamw(AmsMaxOfM), 'amsgrad=True is ignored', False),
]


@pytest.mark.parametrize(("exercise_id", "candidate", "cause", "hidden_only"), cases(WRONG))
def test_a_wrong_answer_fails_with_its_own_cause(monkeypatch, exercise_id, candidate, cause, hidden_only):
    assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only)
