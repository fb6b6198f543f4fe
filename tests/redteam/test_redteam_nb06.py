# ruff: noqa: E701, E702, E501, E402, B007  (wrong answers written compactly, one idea a line)
"""Red team, notebook 06 (06.2): plausible wrong answers written from the student notebook's statement.

Each must fail and any likely cause it is told must be its own mistake (see redteam.py).
"""
import math

import pytest
from redteam import assert_fails, cases


def _wc(step, W, T, base, lo, *, ramp=lambda s, W: s / W, span=lambda W, T: T - W, clamp=True, factor=True, lo_factor=False):
    if step < W: return ramp(step, W)
    if clamp and step >= T: return lo if lo_factor else lo / base
    p = (step - W) / span(W, T)
    m = lo if not lo_factor else lo * base
    lr = m + (base - m) * (1 + math.cos(math.pi * p)) / 2
    return lr / base if factor else lr
def wc_plus_one(step, warmup_steps, total_steps, base_lr, min_lr):
    return _wc(step, warmup_steps, total_steps, base_lr, min_lr, ramp=lambda s, W: (s + 1) / W)
def wc_span_total(step, warmup_steps, total_steps, base_lr, min_lr):
    return _wc(step, warmup_steps, total_steps, base_lr, min_lr, span=lambda W, T: T)
def wc_no_clamp(step, warmup_steps, total_steps, base_lr, min_lr):
    return _wc(step, warmup_steps, total_steps, base_lr, min_lr, clamp=False)




WRONG = [
    ("06.2", wc_plus_one, 'one step ahead', False),
    ("06.2", wc_span_total, '(t − W)/T', False),
    ("06.2", wc_no_clamp, 'rises again', False),
]


@pytest.mark.parametrize(("exercise_id", "candidate", "cause", "hidden_only"), cases(WRONG))
def test_a_wrong_answer_fails_with_its_own_cause(monkeypatch, exercise_id, candidate, cause, hidden_only):
    assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only)
