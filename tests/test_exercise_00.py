"""Exercise 00.1 (one SGD step): the reference passes, each known mistake is named."""

import math
import time

import pytest

from helpers.checking import check, use
from helpers.exercises.nb00 import MISTAKES, sgd_update


def test_reference_and_equivalent_answers_pass():
    assert check("00.1", sgd_update).passed
    assert check("00.1", lambda w, grad, lr: w + (-lr) * grad).passed
    assert check("00.1", lambda w, grad, lr: float(w - grad * lr)).passed


@pytest.mark.parametrize("cause", list(MISTAKES))
def test_each_known_mistake_fails_naming_its_cause(cause):
    result = check("00.1", MISTAKES[cause])
    assert result.status == "failed"
    assert str(result).endswith(f"likely cause: {cause}")


def test_mistake_caught_by_the_negative_gradient_case():
    def absolute_step(w, grad, lr):  # right for positive gradients only
        return w - lr * abs(grad)

    text = str(check("00.1", absolute_step))
    assert "case:     negative gradient: w=1.0, grad=-2.0, lr=0.1" in text
    assert "expected: 1.2" in text and "got:      0.8" in text
    assert "likely cause" not in text  # "you added lr·grad" fits this case but not the first


def test_stub_nan_and_missing_return():
    def stub(w, grad, lr):
        raise NotImplementedError("Exercise 00.1 — replace this line with your code")

    assert check("00.1", stub).status == "not attempted"
    assert "contains NaN" in str(check("00.1", lambda w, grad, lr: math.nan))
    assert "did you forget `return`?" in str(check("00.1", lambda w, grad, lr: None))


def test_use_falls_back_to_the_reference(capsys):
    assert use("00.1", lambda w, grad, lr: w) is sgd_update
    assert capsys.readouterr().out == ("using the reference sgd_update: exercise 00.1 is not solved yet\n")


def test_check_is_fast():
    check("00.1", sgd_update)
    start = time.perf_counter()
    check("00.1", sgd_update)
    assert time.perf_counter() - start < 1.0
