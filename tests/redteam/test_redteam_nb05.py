# ruff: noqa: E701, E702, E501, E402, B007  (wrong answers written compactly, one idea a line)
"""Red team, notebook 05 (05.1, 05.2): plausible wrong answers written from the student notebook's statements.

Each must fail and any likely cause it is told must be its own mistake (see redteam.py).
"""
import pytest
import torch
from redteam import assert_fails, cases

from helpers.surfaces import Surface


def _surface(f, minimum=(3.0, 0.5)):
    return Surface("Beale", f, minima=(minimum,), start=(1.0, 1.5), xlim=(-1.0, 4.5), ylim=(-1.5, 2.0))
def beale_pow_of_product():
    return _surface(lambda x, y: (1.5 - x + x * y) ** 2 + (2.25 - x + (x * y) ** 2) ** 2 + (2.625 - x + (x * y) ** 3) ** 2)
def beale_as_new_tensor():
    return _surface(lambda x, y: torch.tensor((1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2))
def beale_minimum_swapped():
    return _surface(lambda x, y: (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2, (0.5, 3.0))
def ravine_tuple():
    return (0.1, 0.4)
def ravine_customary():
    return {"lr": 0.1, "momentum": 0.9}


WRONG = [
    ("05.1", beale_pow_of_product, "the powers apply to y alone", False),
    ("05.1", beale_as_new_tensor, "cuts the autograd graph", False),
    ("05.1", beale_minimum_swapped, "x and y are swapped", False),
    ("05.2", ravine_tuple, "return the keyword arguments as a dict", False),
    ("05.2", ravine_customary, "momentum 0.9 is too much", False),
]


@pytest.mark.parametrize(("exercise_id", "candidate", "cause", "hidden_only"), cases(WRONG))
def test_a_wrong_answer_fails_with_its_own_cause(monkeypatch, exercise_id, candidate, cause, hidden_only):
    assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only)
