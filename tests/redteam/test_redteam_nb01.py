# ruff: noqa: E701, E702, E501, E402, B007  (wrong answers written compactly, one idea a line)
"""Red team, notebook 01: plausible wrong answers written from the student notebook's statements.

Each must fail (in the notebook's check, or at least in the grader's hidden cases) and any
likely cause it is told must be its own mistake (see redteam.py).
"""
import copy  # noqa: F401
import torch
from helpers.by_hand import mse



import pytest
from redteam import assert_fails, cases

# ---- 01.1
def gd_zero(params, lr):
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= lr * p.grad
                p.grad.zero_()
def gd_first_only(params, lr):
    with torch.no_grad():
        p = params[0]
        p -= lr * p.grad
def gd_returns(params, lr):
    with torch.no_grad():
        return [p - lr * p.grad if p.grad is not None else p for p in params]

# ---- 01.2
def fit_after(x, y, lr=0.1, steps=300):
    from helpers.by_hand import gd_step
    w = torch.zeros((), requires_grad=True); b = torch.zeros((), requires_grad=True); losses = []
    for _ in range(steps):
        loss = mse(w, b, x, y); w.grad = b.grad = None; loss.backward(); gd_step([w, b], lr)
        losses.append(mse(w, b, x, y).item())   # loss after the update
    return w, b, losses
def fit_offbyone(x, y, lr=0.1, steps=300):
    from helpers.by_hand import gd_step
    w = torch.zeros((), requires_grad=True); b = torch.zeros((), requires_grad=True); losses = []
    for _ in range(steps - 1):
        loss = mse(w, b, x, y); w.grad = b.grad = None; loss.backward(); gd_step([w, b], lr)
        losses.append(loss.item())
    return w, b, losses
def fit_nozero(x, y, lr=0.1, steps=300):
    from helpers.by_hand import gd_step
    w = torch.zeros((), requires_grad=True); b = torch.zeros((), requires_grad=True); losses = []
    for _ in range(steps):
        loss = mse(w, b, x, y); loss.backward(); gd_step([w, b], lr)
        losses.append(loss.item())
    return w, b, losses
def fit_tensors(x, y, lr=0.1, steps=300):
    from helpers.by_hand import gd_step
    w = torch.zeros((), requires_grad=True); b = torch.zeros((), requires_grad=True); losses = []
    for _ in range(steps):
        loss = mse(w, b, x, y); w.grad = b.grad = None; loss.backward(); gd_step([w, b], lr)
        losses.append(loss)
    return w, b, losses
def fit_order(x, y, lr=0.1, steps=300):
    from helpers.by_hand import gd_step
    w = torch.zeros((), requires_grad=True); b = torch.zeros((), requires_grad=True); losses = []
    for _ in range(steps):
        loss = mse(w, b, x, y); loss.backward(); gd_step([w, b], lr); w.grad = b.grad = None
        losses.append(loss.item())
    return w.item(), b.item(), losses          # floats instead of tensors (statement: return w, b)

# ---- 01.3
def g_sum(w, b, x, y):
    r = w * x + b - y; return (2 * r * x).sum(), (2 * r).sum()
def g_no2(w, b, x, y):
    r = w * x + b - y; return (r * x).mean(), r.mean()

def g_nox(w, b, x, y):
    r = w * x + b - y; return (2 * r).mean(), (2 * r).mean()
def g_swapped(w, b, x, y):
    r = w * x + b - y; return (2 * r).mean(), (2 * r * x).mean()



WRONG = [
    ("01.1", gd_zero, 'your step reset', False),
    ("01.1", gd_first_only, None, False),
    ("01.1", gd_returns, 'your function returned something', False),
    ("01.2", fit_after, 'the loss after update k', False),
    ("01.2", fit_offbyone, 'one loss per step', False),
    ("01.2", fit_nozero, 'never reset', False),
    ("01.2", fit_tensors, 'loss.item()', False),
    ("01.2", fit_order, 'the parameter tensor w itself', False),
    ("01.3", g_sum, 'a sum instead of a mean', False),
    ("01.3", g_no2, 'factor 2', False),
    ("01.3", g_nox, 'factor x_i', False),
    ("01.3", g_swapped, 'swapped', False),
]


@pytest.mark.parametrize(("exercise_id", "candidate", "cause", "hidden_only"), cases(WRONG))
def test_a_wrong_answer_fails_with_its_own_cause(monkeypatch, exercise_id, candidate, cause, hidden_only):
    assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only)
