# ruff: noqa: E701, E702, E501, E402, B007  (wrong answers written compactly, one idea a line)
"""Red team, notebook 09 (09.4): plausible wrong answers written from the student notebook.

Each must fail and any likely cause it is told must be its own mistake (see redteam.py).
"""
import pytest
from redteam import assert_fails, cases


def sbl_lr_only(optimizer, scheduler, base_lrs):
    for g, old, new in zip(optimizer.param_groups, scheduler.base_lrs, base_lrs): g["lr"] = g["lr"] * new / old
def sbl_no_initial(optimizer, scheduler, base_lrs):
    for g, old, new in zip(optimizer.param_groups, scheduler.base_lrs, base_lrs): g["lr"] = g["lr"] * new / old
    scheduler.base_lrs = list(base_lrs)
def sbl_set_lr(optimizer, scheduler, base_lrs):
    for g, new in zip(optimizer.param_groups, base_lrs): g["lr"] = new; g["initial_lr"] = new
    scheduler.base_lrs = list(base_lrs)
def sbl_base_only(optimizer, scheduler, base_lrs):
    for g, new in zip(optimizer.param_groups, base_lrs): g["initial_lr"] = new
    scheduler.base_lrs = list(base_lrs)
def sbl_after_update(optimizer, scheduler, base_lrs):
    scheduler.base_lrs = list(base_lrs)
    for g, old, new in zip(optimizer.param_groups, scheduler.base_lrs, base_lrs):  # old already overwritten
        g["lr"] = g["lr"] * new / old; g["initial_lr"] = new
def sbl_first_group(optimizer, scheduler, base_lrs):
    g = optimizer.param_groups[0]; g["lr"] = g["lr"] * base_lrs[0] / scheduler.base_lrs[0]; g["initial_lr"] = base_lrs[0]
    scheduler.base_lrs[0] = base_lrs[0]


WRONG = [
    ("09.4", sbl_lr_only, 'you changed only group["lr"]', False),
    ("09.4", sbl_no_initial, 'group["initial_lr"] still holds the old base lr', False),
    ("09.4", sbl_set_lr, 'not the new base lr itself', False),
    ("09.4", sbl_base_only, 'the lr of the current step is still the old one', False),
    ("09.4", sbl_after_update, 'the lr of the current step is still the old one', False),
    ("09.4", sbl_first_group, 'only the first param group changed', False),
]


@pytest.mark.parametrize(("exercise_id", "candidate", "cause", "hidden_only"), cases(WRONG))
def test_a_wrong_answer_fails_with_its_own_cause(monkeypatch, exercise_id, candidate, cause, hidden_only):
    assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only)
