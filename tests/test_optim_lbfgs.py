import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import DTYPES, TOL, assert_resumes, assert_same_errors, compare, deviation

import helpers.optim as ours

_g = torch.Generator().manual_seed(0)
A = torch.randn(8, 5, generator=_g, dtype=torch.float64)
B = torch.randn(8, generator=_g, dtype=torch.float64)


def rosenbrock(x):
    return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2


def least_squares(x):
    r = A.to(x.dtype) @ x - B.to(x.dtype)
    return 0.5 * r @ r


PROBLEMS = {"rosenbrock": (rosenbrock, [-1.2, 1.0]), "least_squares": (least_squares, [0.0] * 5)}
OPTIONS = [
    {},
    {"history_size": 2, "max_iter": 7},
    {"lr": 0.5, "max_eval": 9, "tolerance_grad": 1e-5, "tolerance_change": 1e-6},
]


def run(opt_class, problem, dtype, steps=5, **options):
    """Loss and x after each step(closure), and the optimizer's state."""
    f, start = PROBLEMS[problem]
    x = torch.tensor(start, dtype=dtype, requires_grad=True)
    opt = opt_class([x], **options)

    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    trajectory = [torch.cat([opt.step(closure).detach().reshape(1), x.detach()]) for _ in range(steps)]
    return torch.stack(trajectory), opt.state[x]


def as_tensor(value):
    """A state value (number, tensor or list of tensors) as one tensor."""
    if isinstance(value, list):
        return torch.stack(value) if value else torch.zeros(0)
    return torch.as_tensor(value)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_matches_torch(problem, options, line_search_fn, dtype, record_property):
    ours_run, ours_state = run(ours.LBFGS, problem, dtype, line_search_fn=line_search_fn, **options)
    theirs_run, theirs_state = run(
        torch.optim.LBFGS, problem, dtype, line_search_fn=line_search_fn, **options
    )
    worst = deviation(ours_run, theirs_run)
    # "al" is torch's scratch space for the two-loop recursion, not carried between steps
    assert ours_state.keys() == theirs_state.keys() - {"al"}
    for key in ours_state:
        worst = max(worst, deviation(as_tensor(ours_state[key]), as_tensor(theirs_state[key])))
    record_property("deviation", worst)
    assert worst <= TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_matches_torch_on_several_params_with_missing_grads(line_search_fn, dtype, record_property):
    """The shared noisy problem: three parameters, one of them without .grad at times."""
    record_property(
        "deviation",
        compare(
            ours.LBFGS,
            torch.optim.LBFGS,
            dtype,
            ({},),
            steps=10,
            check_state=False,
            line_search_fn=line_search_fn,
            history_size=4,
        ),
    )


@settings(max_examples=10, deadline=None)
@given(
    lr=st.floats(0.05, 1.5),
    history_size=st.integers(1, 10),
    max_iter=st.integers(1, 25),
    strong_wolfe=st.booleans(),
)
def test_matches_torch_over_hyperparameters(lr, history_size, max_iter, strong_wolfe):
    options = {
        "lr": lr,
        "history_size": history_size,
        "max_iter": max_iter,
        "line_search_fn": "strong_wolfe" if strong_wolfe else None,
    }
    ours_run, _ = run(ours.LBFGS, "least_squares", torch.float64, steps=3, **options)
    theirs_run, _ = run(torch.optim.LBFGS, "least_squares", torch.float64, steps=3, **options)
    assert deviation(ours_run, theirs_run) <= TOL[torch.float64]


def test_finds_the_minimum():
    """Independent of torch: the least-squares solution and Rosenbrock's minimum (1, 1)."""
    tight = {"line_search_fn": "strong_wolfe", "tolerance_grad": 1e-12, "tolerance_change": 0}
    trajectory, _ = run(ours.LBFGS, "least_squares", torch.float64, **tight)
    torch.testing.assert_close(trajectory[-1, 1:], torch.linalg.lstsq(A, B).solution, rtol=0, atol=1e-10)
    trajectory, _ = run(ours.LBFGS, "rosenbrock", torch.float64, **tight)
    torch.testing.assert_close(trajectory[-1, 1:], torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-10)


def test_defaults_match_torch():
    params = [torch.zeros(1, requires_grad=True)]
    theirs = torch.optim.LBFGS(params).defaults
    assert ours.LBFGS(params).defaults == theirs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_state_dict_resumes(line_search_fn, dtype, record_property):
    record_property(
        "deviation",
        assert_resumes(
            ours.LBFGS,
            torch.optim.LBFGS,
            dtype,
            ({},),
            steps=10,
            line_search_fn=line_search_fn,
            history_size=4,
        ),
    )


def test_bad_arguments_raise_like_torch():
    assert_same_errors(ours.LBFGS, torch.optim.LBFGS, [{"lr": -1.0}])
    groups = [
        {"params": [torch.zeros(1, requires_grad=True)]},
        {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1},
    ]
    for cls in (ours.LBFGS, torch.optim.LBFGS):
        with pytest.raises(ValueError, match="doesn't support per-parameter options"):
            cls(groups)
    # torch accepts a second group here and fails in step(); we refuse it right away
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        ours.LBFGS(groups[:1]).add_param_group(groups[1])


def test_unknown_line_search_raises_at_construction():
    """torch accepts it and raises RuntimeError in step(); we refuse it right away."""
    with pytest.raises(ValueError, match="line_search_fn must be None or 'strong_wolfe'"):
        ours.LBFGS([torch.zeros(1, requires_grad=True)], line_search_fn="wolfe")
