# ruff: noqa: E701, E702, E501, E402, B007  (wrong answers written compactly, one idea a line)
"""Red team, notebook 02: plausible wrong answers written from the student notebook's statements.

Each must fail (in the notebook's check, or at least in the grader's hidden cases) and any
likely cause it is told must be its own mistake (see redteam.py).
"""
import copy  # noqa: F401
import torch
import torch.nn.functional as F



import pytest
from redteam import assert_fails, cases

# ---- 02.1
def train_zero_after_step_only_once(model, optimizer, data, steps):
    x, y = data; h = []; optimizer.zero_grad()
    for _ in range(steps):
        loss = F.mse_loss(model(x), y); loss.backward(); optimizer.step(); h.append(loss.item())
    return h
def train_loss_after(model, optimizer, data, steps):
    x, y = data; h = []
    for _ in range(steps):
        optimizer.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward(); optimizer.step()
        h.append(F.mse_loss(model(x), y).item())
    return h

def train_steps_plus(model, optimizer, data, steps):
    x, y = data; h = []
    for _ in range(steps + 1):
        optimizer.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward(); optimizer.step(); h.append(loss.item())
    return h[:steps]

# ---- 02.2
def te_last(model, optimizer, batches, epochs):
    h = []
    for _ in range(epochs):
        for x, y in batches:
            optimizer.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward(); optimizer.step()
        h.append(loss.item())
    return h
def te_sum(model, optimizer, batches, epochs):
    h = []
    for _ in range(epochs):
        t = 0.0
        for x, y in batches:
            optimizer.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward(); optimizer.step(); t += loss.item()
        h.append(t)
    return h

def te_weighted(model, optimizer, batches, epochs):
    h = []
    for _ in range(epochs):
        t = 0.0; n = 0
        for x, y in batches:
            optimizer.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward(); optimizer.step(); t += loss.item() * len(x); n += len(x)
        h.append(t / n)
    return h

# ---- 02.3
def ft_inplace(pretrained, data, steps, lr):
    model = pretrained; opt = torch.optim.SGD(model.parameters(), lr=lr); x, y = data; h = []
    for _ in range(steps):
        opt.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward(); opt.step(); h.append(loss.item())
    return model, h


def ft_fixed_lr(pretrained, data, steps, lr):
    model = copy.deepcopy(pretrained); opt = torch.optim.SGD(model.parameters(), lr=0.1); x, y = data; h = []
    for _ in range(steps):
        opt.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward(); opt.step(); h.append(loss.item())
    return model, h
def ft_pretrained_grads(pretrained, data, steps, lr):
    model = copy.deepcopy(pretrained); opt = torch.optim.SGD(model.parameters(), lr=lr); x, y = data; h = []
    for _ in range(steps):
        pretrained.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward(); opt.step(); h.append(loss.item())
    return model, h

# ---- 02.4
def _until(model, optimizer, data, tol, max_steps, rule):
    x, y = data; h = []
    for k in range(max_steps):
        optimizer.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward(); optimizer.step(); h.append(loss.item())
        if rule(h, tol):
            break
    return h
def tu_abs(model, optimizer, data, tol, max_steps):
    return _until(model, optimizer, data, tol, max_steps, lambda h, t: len(h) > 1 and abs(h[-2] - h[-1]) < t)
def tu_le(model, optimizer, data, tol, max_steps):
    return _until(model, optimizer, data, tol, max_steps, lambda h, t: len(h) > 1 and h[-2] - h[-1] <= t)
def tu_rel(model, optimizer, data, tol, max_steps):
    return _until(model, optimizer, data, tol, max_steps, lambda h, t: len(h) > 1 and (h[-2] - h[-1]) / h[-2] < t)

def tu_while(model, optimizer, data, tol, max_steps):
    x, y = data; h = []; prev = float("inf")
    while len(h) < max_steps:
        optimizer.zero_grad(); loss = F.mse_loss(model(x), y); loss.backward()
        if prev - loss.item() < tol:
            h.append(loss.item()); break
        optimizer.step(); h.append(loss.item()); prev = loss.item()
    return h


WRONG = [
    ("02.1", train_zero_after_step_only_once, 'without zero_grad()', False),
    ("02.1", train_loss_after, 'after the update', False),
    ("02.1", train_steps_plus, None, False),
    ("02.2", te_last, 'last batch', False),
    ("02.2", te_sum, 'the sum of', False),
    ("02.2", te_weighted, 'by its size', False),
    ("02.3", ft_inplace, 'pretrained was changed', False),
    ("02.3", ft_fixed_lr, 'lr argument is ignored', False),
    ("02.3", ft_pretrained_grads, None, False),
    ("02.4", tu_abs, '|history[-2] - history[-1]|', False),
    ("02.4", tu_le, None, True),
    ("02.4", tu_rel, None, False),
    ("02.4", tu_while, None, False),
]


@pytest.mark.parametrize(("exercise_id", "candidate", "cause", "hidden_only"), cases(WRONG))
def test_a_wrong_answer_fails_with_its_own_cause(monkeypatch, exercise_id, candidate, cause, hidden_only):
    assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only)
