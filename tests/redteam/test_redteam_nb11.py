# ruff: noqa: E701, E702, E501, E402, B007  (wrong answers written compactly, one idea a line)
"""Red team, notebook 11: plausible wrong answers written from the student notebook's statements.

Each must fail (in the notebook's check, or at least in the grader's hidden cases) and any
likely cause it is told must be its own mistake (see redteam.py).
"""
import math

import pytest
from redteam import assert_fails, cases

from helpers.exercises.nb11 import newton_schulz

A, B, C = 3.4445, -4.7750, 2.0315


# ---- 11.2
def ns_right_mult(G, steps=5, coefficients=(A, B, C), eps=1e-7):
    a, b, c = coefficients; tall = G.size(0) > G.size(1); X = G.T if tall else G
    X = X / X.norm().clamp(min=eps)
    for _ in range(steps):
        M = X @ X.T; X = a * X + X @ (b * M + c * M @ M)
    return X.T if tall else X
def ns_in_place(G, steps=5, coefficients=(A, B, C), eps=1e-7):
    a, b, c = coefficients; tall = G.size(0) > G.size(1)
    X = G.div_(G.norm().clamp(min=eps)); X = X.T if tall else X
    for _ in range(steps):
        M = X @ X.T; X = a * X + (b * M + c * M @ M) @ X
    return X.T if tall else X
def ns_float32(G, steps=5, coefficients=(A, B, C), eps=1e-7):
    a, b, c = coefficients; tall = G.size(0) > G.size(1); X = (G.T if tall else G).float()
    X = X / X.norm().clamp(min=eps)
    for _ in range(steps):
        M = X @ X.T; X = a * X + (b * M + c * M @ M) @ X
    return X.T if tall else X

# ---- 11.3
def _muon(p, grad, buf, lr, momentum, nesterov, weight_decay, *, look=None, scale=None, old_buf=False):
    before = buf.clone()
    buf.lerp_(grad, 1 - momentum)
    src = before if old_buf else buf
    u = (look(grad, src, momentum) if look else grad.lerp(src, momentum)) if nesterov else buf
    rows, cols = p.shape
    p.mul_(1 - lr * weight_decay)
    p.add_(newton_schulz(u), alpha=-lr * (scale(rows, cols) if scale else math.sqrt(max(1, rows / cols))))
def muon_lookahead_swapped(p, grad, buf, lr, momentum=0.95, nesterov=True, weight_decay=0.1):
    _muon(p, grad, buf, lr, momentum, nesterov, weight_decay, look=lambda g, b, m: b.lerp(g, m))

def muon_old_buf(p, grad, buf, lr, momentum=0.95, nesterov=True, weight_decay=0.1):
    _muon(p, grad, buf, lr, momentum, nesterov, weight_decay, old_buf=True)
def muon_buf_rebound(p, grad, buf, lr, momentum=0.95, nesterov=True, weight_decay=0.1):
    buf = buf.lerp(grad, 1 - momentum); u = grad.lerp(buf, momentum) if nesterov else buf
    rows, cols = p.shape; p.mul_(1 - lr * weight_decay); p.add_(newton_schulz(u), alpha=-lr * math.sqrt(max(1, rows / cols)))


# ---- 11.4
def _rect(t, beta2, *, power=None, threshold_t=None):
    rho_inf = 2 / (1 - beta2) - 1
    k = t if power is None else power(t)
    rho_t = rho_inf - 2 * t * beta2**k / (1 - beta2**k)
    if (rho_t <= 5) if threshold_t is None else (t <= threshold_t):
        return None
    return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
def rect_t_minus_1(t, beta2=0.999):
    return _rect(t, beta2, power=lambda t: t + 1)
def rect_first_five_steps(t, beta2=0.999):
    return _rect(t, beta2, threshold_t=5)
def rect_inverted(t, beta2=0.999):
    rho_inf = 2 / (1 - beta2) - 1; rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    if rho_t <= 5: return None
    return math.sqrt((rho_inf - 4) * (rho_inf - 2) * rho_t / ((rho_t - 4) * (rho_t - 2) * rho_inf))


# ---- 11.5
def fsm_old_state(row_var, col_var, grad, one_minus_beta2, eps1=1e-30):
    V = row_var @ col_var / row_var.mean().clamp(min=eps1)
    g2 = grad.square()
    return row_var.lerp(g2.mean(-1, keepdim=True), one_minus_beta2), col_var.lerp(g2.mean(-2, keepdim=True), one_minus_beta2), V
def fsm_in_place(row_var, col_var, grad, one_minus_beta2, eps1=1e-30):
    g2 = grad.square(); R = row_var.lerp_(g2.mean(-1, keepdim=True), one_minus_beta2); C = col_var.lerp_(g2.mean(-2, keepdim=True), one_minus_beta2)
    return R, C, R @ C / R.mean().clamp(min=eps1)



WRONG = [
    ("11.2", ns_right_mult, None, False),
    ("11.2", ns_in_place, 'modified its input `G`', False),
    ("11.2", ns_float32, 'lower precision', False),
    ("11.3", muon_lookahead_swapped, None, False),
    ("11.3", muon_old_buf, 'you orthogonalize B itself', False),
    ("11.3", muon_buf_rebound, 'did not update its input in place', False),
    ("11.4", rect_t_minus_1, None, False),
    ("11.4", rect_first_five_steps, "while t ≤ 5", False),
    ("11.4", rect_inverted, None, False),
    ("11.5", fsm_old_state, None, False),
    ("11.5", fsm_in_place, 'modified its input `row_var`', False),
]


@pytest.mark.parametrize(("exercise_id", "candidate", "cause", "hidden_only"), cases(WRONG))
def test_a_wrong_answer_fails_with_its_own_cause(monkeypatch, exercise_id, candidate, cause, hidden_only):
    assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only)
