"""Notebook 05 checkers: right answers pass however written, known wrong ones fail naming why."""

import dataclasses
import math

import pytest
import torch

from helpers.checking import check
from helpers.exercises import nb05
from helpers.surfaces import Surface


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise 05.K: replace this line with your code")


def _details(result):
    return dict(result.details)


def surface_of(f, minimum=nb05.BEALE_MINIMUM):
    return lambda: Surface("Beale", f, minima=(minimum,), start=(1.0, 1.5), xlim=(-1.0, 4.5),
                           ylim=(-1.5, 2.0))


# --------------------------------------------------------------------------
# 05.1 Beale
# --------------------------------------------------------------------------


def test_reference_beale_matches_the_published_values():
    # f(0, 0) = 1.5² + 2.25² + 2.625², f(3, 0.5) = 0, f(2, 0) = 0.5² + 0.25² + 0.625²
    x = torch.tensor([0.0, 3.0, 2.0], dtype=torch.float64)
    y = torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64)
    expected = [1.5**2 + 2.25**2 + 2.625**2, 0.0, 0.5**2 + 0.25**2 + 0.625**2]
    assert nb05.beale(x, y).tolist() == pytest.approx(expected, abs=1e-12)


def test_beale_written_otherwise_passes():
    def by_sum(x, y):  # one term per power of y, summed in a loop
        return sum((c - x + x * y**k) ** 2 for k, c in enumerate((1.5, 2.25, 2.625), start=1))

    def with_torch_functions(x, y):
        terms = torch.stack([1.5 - x * (1 - y), 2.25 - x * (1 - y.pow(2)), 2.625 - x * (1 - y.pow(3))])
        return terms.square().sum(dim=0)

    assert check("05.1", nb05.beale_surface).passed
    assert check("05.1", surface_of(by_sum)).passed
    assert check("05.1", surface_of(with_torch_functions)).passed
    assert check("05.1", surface_of(nb05.beale, minimum=(3, 0.5))).passed  # ints are fine


@pytest.mark.parametrize("cause", list(nb05.BEALE_MISTAKES))
def test_wrong_formulas_are_named(cause):
    result = check("05.1", surface_of(nb05.BEALE_MISTAKES[cause]))
    assert result.status == "failed"
    assert _details(result)["case"].startswith("values at 6 points")
    assert _details(result)["likely cause"] == cause


def test_a_formula_that_cuts_the_graph_is_named():
    def detached(x, y):
        return nb05.beale(x, y).detach()

    details = _details(check("05.1", surface_of(detached)))
    assert details["case"].startswith("autograd gradients")
    assert "cuts the autograd graph" in details["likely cause"]


def test_a_formula_for_single_points_only_fails_on_the_grid():
    def float64_only(x, y):
        return nb05.beale(x.double(), y.double())

    details = _details(check("05.1", surface_of(float64_only)))
    assert details["case"].startswith("a 4×3 grid")
    assert "dtype torch.float64, expected torch.float32" in details["detail"]


@pytest.mark.parametrize(("minimum", "cause"), [
    ((0.5, 3.0), "x and y are swapped"),
    ((1.0, 1.0), "Rosenbrock's minimum"),
    ((3.0, 0.6), "all three brackets"),
])
def test_wrong_minima_are_named(minimum, cause):
    details = _details(check("05.1", surface_of(nb05.beale, minimum)))
    assert details["case"] == "the minimum"
    assert cause in details["likely cause"]


def test_a_wrong_value_names_the_point():
    def off_at_one_point(x, y):  # right everywhere but at (-1, 2)
        return nb05.beale(x, y) + ((x == -1) & (y == 2)).to(x.dtype)

    details = _details(check("05.1", surface_of(off_at_one_point)))
    assert details["detail"] == "f(-1, 2) differs"
    assert "likely cause" not in details  # no known mistake reproduces it


@pytest.mark.parametrize(("attribute", "value"), [
    ("name", "beale"), ("start", (1.5, 1.0)), ("xlim", (-1.0, 4.0)), ("ylim", (-1.5, 1.5)),
])
def test_every_attribute_the_docstring_names_is_checked(attribute, value):
    right = nb05.beale_surface()
    wrong = dataclasses.replace(right, **{attribute: value})
    details = _details(check("05.1", lambda: wrong))
    assert details["case"] == "the attributes" and details["detail"] == f"surface.{attribute}"


def test_minima_as_a_bare_pair_is_named():
    flat = dataclasses.replace(nb05.beale_surface(), minima=(3.0, 0.5))
    details = _details(check("05.1", lambda: flat))
    assert details["case"] == "the minimum" and "((x, y),)" in details["likely cause"]


def test_not_a_surface_and_missing_return():
    assert "forget `return`" in _details(check("05.1", lambda: None))["likely cause"]
    assert _details(check("05.1", lambda: nb05.beale))["expected"] == "a Surface"


# --------------------------------------------------------------------------
# 05.2 momentum on the ravine, 05.3 Adam on Rosenbrock
# --------------------------------------------------------------------------


def test_heavy_ball_optimum_and_other_good_settings_pass():
    # Polyak's optimal heavy ball for curvatures 1 and 20
    lr, momentum = 4 / (math.sqrt(20) + 1) ** 2, ((math.sqrt(20) - 1) / (math.sqrt(20) + 1)) ** 2
    assert check("05.2", lambda: {"lr": lr, "momentum": momentum}).passed
    assert check("05.2", nb05.ravine_momentum).passed
    assert check("05.2", lambda: {"momentum": 0.5, "lr": 0.08}).passed  # any key order


@pytest.mark.parametrize(("settings", "cause"), [
    ({"lr": 0.09, "momentum": 0.0}, "without momentum SGD cannot make it"),
    ({"lr": 0.05, "momentum": 0.9}, "momentum 0.9 is too much"),
    ({"lr": 0.2, "momentum": 0.5}, "lr too large"),
    ({"lr": 0.03, "momentum": 0.3}, "too slow along the valley floor"),
])
def test_ravine_failures_say_how_close_and_why(settings, cause):
    details = _details(check("05.2", lambda: settings))
    assert details["expected"] == "within 0.01 of the minimum (0, 0) after 30 steps"
    assert "from the nearest minimum" in details["got"]
    assert cause in details["likely cause"]


def test_much_momentum_with_a_tiny_lr_is_called_slow_not_swinging():
    # lr·curvature ≪ (1 − √μ)²: the heavy ball is overdamped along x, it never passes 0
    details = _details(check("05.2", lambda: {"lr": 0.001, "momentum": 0.9}))
    assert "too slow along the valley floor" in details["likely cause"]


def test_plain_sgd_zig_zags_in_y():
    assert "y zig-zags" in _details(check("05.2", lambda: {"lr": 0.09, "momentum": 0}))["got"]


def test_rosenbrock_adam_good_settings_pass():
    assert check("05.3", nb05.rosenbrock_adam).passed
    assert check("05.3", lambda: {"lr": 0.1, "betas": [0.9, 0.95]}).passed  # a list is fine


@pytest.mark.parametrize(("settings", "cause"), [
    ({"lr": 0.05, "betas": (0.9, 0.999)}, "β₂ = 0.999 averages"),
    ({"lr": 0.01, "betas": (0.9, 0.9)}, "lr too small"),
    ({"lr": 0.1, "betas": (0.5, 0.9)}, "β₁ = 0.5 is little momentum"),
    ({"lr": 0.3, "betas": (0.9, 0.8)}, "lr too large"),
])
def test_rosenbrock_failures_name_the_hyperparameter(settings, cause):
    details = _details(check("05.3", lambda: settings))
    assert details["expected"] == "within 0.05 of the minimum (1, 1) after 300 steps"
    assert cause in details["likely cause"]


@pytest.mark.parametrize(("exercise", "answer", "cause"), [
    ("05.2", None, "forget `return`"),
    ("05.2", {"lr": 0.1}, "add ['momentum']"),
    ("05.3", {"lr": 0.1, "betas": (0.9, 0.9), "eps": 1e-8}, "leave out ['eps']"),
    ("05.3", {"lr": 0.1, "betas": 0.9}, "a pair of numbers"),
    ("05.2", {"lr": "0.1", "momentum": 0.4}, "not as str '0.1'"),
    ("05.3", {"lr": 0.05, "betas": (0.9, "0.9")}, "not as str '0.9'"),
    ("05.2", {"lr": 0.1, "momentum": True}, "not as bool True"),
])
def test_malformed_answers(exercise, answer, cause):
    assert cause in _details(check(exercise, lambda: answer))["likely cause"]


# --------------------------------------------------------------------------
# Every exercise: stub, raising candidate
# --------------------------------------------------------------------------


@pytest.mark.parametrize("exercise", ["05.1", "05.2", "05.3"])
def test_stub_is_not_attempted_and_errors_are_reported(exercise):
    assert check(exercise, stub).status == "not attempted"

    def broken():
        return {}["lr"]

    result = check(exercise, broken)
    assert result.status == "failed"
    assert "KeyError" in _details(result)["your code raised"]


def test_half_done_beale_is_not_attempted():
    assert check("05.1", surface_of(stub)).status == "not attempted"
