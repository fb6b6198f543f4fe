# ruff: noqa: E701, E702, E501, E402, B007  (wrong answers written compactly, one idea a line)
"""Red team, notebook 08: plausible wrong answers written from the student notebook's statements.

Each must fail (in the notebook's check, or at least in the grader's hidden cases) and any
likely cause it is told must be its own mistake (see redteam.py).
"""
import copy  # noqa: F401
from torch import nn
NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
         nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


import pytest
from redteam import assert_fails, cases

def dg_trainable(model, weight_decay):
    d, n = [], []
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            if not p.requires_grad: continue
            (n if name.endswith("bias") or isinstance(m, NORMS) else d).append(p)
    return [{"params": d, "weight_decay": weight_decay}, {"params": n, "weight_decay": 0.0}]
def dg_named(model, weight_decay):
    d, n = [], []
    for name, p in model.named_parameters():
        (n if "bias" in name or "norm" in name.lower() or "ln" in name else d).append(p)
    return [{"params": d, "weight_decay": weight_decay}, {"params": n, "weight_decay": 0.0}]
def dg_no_wd_second(model, weight_decay):
    d, n = [], []
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            (n if name.endswith("bias") or isinstance(m, NORMS) else d).append(p)
    return [{"params": d, "weight_decay": weight_decay}, {"params": n}]
def dg_tied_twice(model, weight_decay):
    d, n = [], []
    for m in model.modules():
        for name, p in m._parameters.items():
            if p is None: continue
            (n if name.endswith("bias") or isinstance(m, NORMS) else d).append(p)
    return [{"params": d, "weight_decay": weight_decay}, {"params": n, "weight_decay": 0.0}]

def ll_reversed(blocks, lr, decay):
    return [{"params": list(b.parameters()), "lr": lr * decay ** i} for i, b in enumerate(blocks)]
def ll_off(blocks, lr, decay):
    N = len(blocks); return [{"params": list(b.parameters()), "lr": lr * decay ** (N - i)} for i, b in enumerate(blocks)]
def ll_trainable(blocks, lr, decay):
    N = len(blocks); return [{"params": [p for p in b.parameters() if p.requires_grad], "lr": lr * decay ** (N - 1 - i)} for i, b in enumerate(blocks)]
def ll_gen(blocks, lr, decay):
    N = len(blocks); return [{"params": b.parameters(), "lr": lr * decay ** (N - 1 - i)} for i, b in enumerate(blocks)]




WRONG = [
    ("08.1", dg_trainable, 'frozen parameters', False),
    ("08.1", dg_named, 'by their names', False),
    ("08.1", dg_no_wd_second, "no 'weight_decay' key", False),
    ("08.1", dg_tied_twice, 'tied weights', False),
    ("08.2", ll_reversed, 'the wrong way', False),
    ("08.2", ll_off, 'off by one', False),
    ("08.2", ll_trainable, 'frozen parameters', False),
    ("08.2", ll_gen, 'must be a list', False),
]


@pytest.mark.parametrize(("exercise_id", "candidate", "cause", "hidden_only"), cases(WRONG))
def test_a_wrong_answer_fails_with_its_own_cause(monkeypatch, exercise_id, candidate, cause, hidden_only):
    assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only)
