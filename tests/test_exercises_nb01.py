"""Notebook 01 (gradients by hand): the reference code in helpers.by_hand, and the checkers.

For every exercise: the reference and a differently written correct answer pass;
typical wrong answers fail with a message naming the cause; the stub is
"not attempted"; a crash is reported, not raised.
"""

import itertools
import time

import pytest
import torch

from helpers import by_hand
from helpers.checking import check

# --------------------------------------------------------------------------
# The reference code, against torch and closed forms
# --------------------------------------------------------------------------


def test_noisy_line_is_seeded_and_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    x, y = by_hand.noisy_line(n=7, seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    assert x.shape == y.shape == (7,)
    assert torch.equal(x, by_hand.noisy_line(n=7, seed=4)[0])
    assert not torch.equal(x, by_hand.noisy_line(n=7, seed=5)[0])
    assert x.abs().max() <= 1
    x, y = by_hand.noisy_line(n=20, seed=0, noise=0.0)
    assert torch.allclose(y, 3 * x + 2)


def test_gd_step_matches_torch_sgd():
    torch.manual_seed(0)
    theirs = [torch.randn(3), torch.randn(2, 2), torch.randn(2)]  # the last one stays unused
    theirs = [p.requires_grad_() for p in theirs]
    ours = [p.detach().clone().requires_grad_() for p in theirs]
    optimizer = torch.optim.SGD(theirs, lr=0.3)

    def backward(params):
        by_hand.zero_grads(params)
        ((params[0] ** 2).sum() + params[1].sin().sum()).backward()

    for step in range(3):
        backward(theirs)
        optimizer.step()
        backward(ours)
        by_hand.gd_step(ours, lr=0.3)
        for expected, got in zip(theirs, ours):
            assert torch.allclose(expected, got), step
            assert got.is_leaf and got.requires_grad
    assert ours[2].grad is None  # skipped
    assert torch.allclose(ours[0].grad, 2 * (ours[0] + 0.3 * ours[0].grad))  # left alone


def test_mse_grads_is_autograd_gradient():
    x, y = by_hand.noisy_line(n=9, seed=1)
    w = torch.tensor(0.7, requires_grad=True)
    b = torch.tensor(-0.2, requires_grad=True)
    by_hand.mse(w, b, x, y).backward()
    dw, db = by_hand.mse_grads(w.detach(), b.detach(), x, y)
    assert torch.allclose(dw, w.grad) and torch.allclose(db, b.grad)


def test_least_squares_matches_lstsq_and_fit_line_converges_to_it():
    x, y = by_hand.noisy_line(seed=7)
    solution = torch.linalg.lstsq(torch.stack([x, torch.ones_like(x)], 1), y[:, None]).solution
    w_ls, b_ls = by_hand.least_squares(x, y)
    assert torch.allclose(torch.stack([w_ls, b_ls]), solution[:, 0], atol=1e-5)
    w, b, losses = by_hand.fit_line(x, y, lr=0.1, steps=300)
    assert abs(w.item() - w_ls.item()) < 1e-3 and abs(b.item() - b_ls.item()) < 1e-3
    assert len(losses) == 300 and losses[0] == pytest.approx(by_hand.mse(0, 0, x, y).item())
    assert all(later <= earlier + 1e-7 for earlier, later in itertools.pairwise(losses))


def test_graph_nodes_lists_the_recorded_operations():
    w = torch.tensor(2.0, requires_grad=True)
    assert by_hand.graph_nodes((3 * w - 1) ** 2) == [
        "PowBackward0",
        "SubBackward0",
        "MulBackward0",
        "AccumulateGrad",
    ]
    assert by_hand.graph_nodes(w * w) == ["MulBackward0", "AccumulateGrad"]  # w once
    with torch.no_grad():
        assert by_hand.graph_nodes(3 * w) == []


# --------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def warm_up():
    """The first check imports every notebook's checkers (seconds): pay it once, here."""
    from helpers import exercises

    exercises.load_all()


@pytest.fixture(autouse=True)
def stepwise_home(tmp_path, monkeypatch):
    monkeypatch.setenv("STEPWISE_HOME", str(tmp_path))
    monkeypatch.delenv("STEPWISE_GRADING", raising=False)


def verdict(exercise_id, candidate):
    start = time.process_time()  # CPU time: other processes on the machine do not count
    result = check(exercise_id, candidate, strict=False)
    assert time.process_time() - start < 1, "a check must take less than a second"
    return result


def assert_passes(exercise_id, candidate):
    result = verdict(exercise_id, candidate)
    assert result.status == "passed", str(result)


def assert_fails(exercise_id, candidate, *phrases):
    result = verdict(exercise_id, candidate)
    assert result.status == "failed", str(result)
    for phrase in phrases:
        assert phrase in str(result), f"{phrase!r} not in:\n{result}"


def stub(*args):
    raise NotImplementedError("Exercise: replace this line with your code")


@pytest.mark.parametrize("exercise_id", ["01.1", "01.2", "01.3"])
def test_stub_is_not_attempted(exercise_id):
    assert verdict(exercise_id, stub).status == "not attempted"


@pytest.mark.parametrize("exercise_id", ["01.1", "01.2", "01.3"])
def test_a_crash_is_reported_not_raised(exercise_id):
    def crashes(*args):
        return {}["missing"]

    result = verdict(exercise_id, crashes)
    assert result.status == "failed"
    assert "your code raised: KeyError: 'missing'" in str(result)


# --------------------------------------------------------------------------
# 01.1 A gradient-descent step
# --------------------------------------------------------------------------


def test_gd_step_reference_passes():
    assert_passes("01.1", by_hand.gd_step)


def gd_step_sub_(params, lr):  # in place with Tensor.sub_(alpha=…), as a decorated function
    for p in params:
        if p.grad is not None:
            p.sub_(p.grad, alpha=lr)


def test_gd_step_written_differently_passes():
    assert_passes("01.1", torch.no_grad()(gd_step_sub_))


def test_gd_step_outside_no_grad_fails_with_the_leaf_error():
    def step(params, lr):
        for p in params:
            if p.grad is not None:
                p -= lr * p.grad

    assert_fails("01.1", step, "leaf Variable", "torch.no_grad()")


def test_gd_step_out_of_place_fails_as_not_in_place():
    def step(params, lr):
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p = p - lr * p.grad

    assert_fails("01.1", step, "did not change", "only rebinds")


def test_gd_step_returning_new_tensors_fails_as_not_in_place():
    def step(params, lr):
        with torch.no_grad():
            return [p - lr * p.grad if p.grad is not None else p for p in params]

    assert_fails("01.1", step, "did not change", "should update, not return")


def test_gd_step_sign_error_is_named():
    def step(params, lr):
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p += lr * p.grad

    assert_fails("01.1", step, "sign error")


def test_gd_step_without_lr_is_named():
    def step(params, lr):
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p -= p.grad

    assert_fails("01.1", step, "learning rate is missing")


@pytest.mark.parametrize("reset", ["zero_", "none"])
def test_gd_step_that_resets_gradients_fails(reset):
    def step(params, lr):
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p -= lr * p.grad
                    if reset == "zero_":
                        p.grad.zero_()
                    else:
                        p.grad = None

    assert_fails("01.1", step, "reset (or changed) the gradients", "training loop's job")


def test_gd_step_not_skipping_none_grads_fails_on_that_case():
    def step(params, lr):
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad

    assert_fails("01.1", step, "the second parameter has .grad None", "TypeError")


def test_gd_step_that_detaches_fails_as_no_longer_a_leaf_that_requires_grad():
    def step(params, lr):
        for p in params:
            if p.grad is not None:
                p.requires_grad_(False)
                p -= lr * p.grad

    assert_fails("01.1", step, "requires_grad=False", "still be a leaf")


def test_gd_step_that_switches_autograd_off_for_good_fails():
    def step(params, lr):
        torch.set_grad_enabled(False)
        for p in params:
            if p.grad is not None:
                p -= lr * p.grad

    assert_fails("01.1", step, "switched autograd off")
    assert torch.is_grad_enabled()  # the check restored it


# --------------------------------------------------------------------------
# 01.2 The training loop
# --------------------------------------------------------------------------


def fit_line_alternative(x, y, lr, steps):
    """Correct, written differently: sum/n, zero_() after the update, update inline."""
    w = torch.tensor(0.0, requires_grad=True)
    b = torch.tensor(0.0, requires_grad=True)
    losses = []
    for _ in range(steps):
        loss = ((y - (b + x * w)) ** 2).sum() / len(x)
        loss.backward()
        with torch.no_grad():
            w.sub_(lr * w.grad)
            b.sub_(lr * b.grad)
        w.grad.zero_()
        b.grad.zero_()
        losses.append(loss.detach().item())
    return w, b, losses


def flawed_fit(
    *,
    reset=True,
    reset_after_backward=False,
    ascent=False,
    out_of_place=False,
    lr_fixed=None,
    tensors=False,
    extra_step=False,
    log_after=False,
    step_before_backward=False,
    reset_only=None,
    zero_=False,
    shape=(),
):
    """A loop written as a learner would, with one mistake switched on."""

    def fit(x, y, lr, steps):
        w = torch.zeros(shape, requires_grad=True)
        b = torch.zeros(shape, requires_grad=True)
        step_size = lr if lr_fixed is None else lr_fixed
        losses = []
        for _ in range(steps + extra_step):
            loss = by_hand.mse(w, b, x, y)
            if zero_:
                w.grad.zero_()
                b.grad.zero_()
            elif reset_only:
                {"w": w, "b": b}[reset_only].grad = None
            elif reset:
                w.grad = b.grad = None
            if step_before_backward:
                by_hand.gd_step([w, b], step_size)
                loss.backward()
                losses.append(loss.item())
                continue
            loss.backward()
            if reset_after_backward:
                w.grad = b.grad = None
            sign = -1 if ascent else 1
            if out_of_place:
                w, b = w - sign * step_size * w.grad, b - sign * step_size * b.grad
            else:
                by_hand.gd_step([w, b], sign * step_size)
            if log_after:
                losses.append(by_hand.mse(w, b, x, y).item())
            else:
                losses.append(loss if tensors else loss.item())
        return w, b, losses

    return fit


def test_fit_line_reference_passes():
    assert_passes("01.2", by_hand.fit_line)


def test_fit_line_written_differently_passes():
    assert_passes("01.2", fit_line_alternative)


@pytest.mark.parametrize(
    "flaw, phrases",
    [
        ({"reset": False}, ["never reset", "losses[2] differs"]),
        ({"ascent": True}, ["sign error", "losses[1] differs"]),
        ({"reset": True, "reset_after_backward": True}, ["reset between backward() and the update"]),
        ({"step_before_backward": True}, ["never move", "the update before backward()"]),
        ({"reset_only": "w"}, ["only w's gradient is reset", "losses[2] differs"]),
        ({"reset_only": "b"}, ["only b's gradient is reset", "losses[2] differs"]),
        ({"zero_": True}, ["AttributeError", "until the first backward()"]),
        ({"shape": (1,)}, ["a 0-dim tensor", "torch.zeros(1) has shape (1,)"]),
        ({"log_after": True}, ["losses[k] is the loss after update k", "losses[0] differs"]),
        ({"lr_fixed": 0.1}, ["seed=2, lr=0.05", "lr argument is ignored"]),
        ({"lr_fixed": 0.2}, ["seed=1, lr=0.1", "losses[1] differs", "with lr as given) is not"]),
        ({"lr_fixed": 1.5}, ["seed=1, lr=0.1", "the loss grows"]),
        ({"out_of_place": True}, ["TypeError", "not a leaf", "torch.no_grad()"]),
        ({"tensors": True}, ["loss.item()"]),
        ({"extra_step": True}, ["a list of 5 losses"]),
    ],
)
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_fit_line_typical_mistakes_are_named(flaw, phrases):
    assert_fails("01.2", flawed_fit(**flaw), *phrases)


def test_fit_line_update_outside_no_grad_names_no_grad():
    def fit(x, y, lr, steps):
        w = torch.zeros((), requires_grad=True)
        b = torch.zeros((), requires_grad=True)
        losses = []
        for _ in range(steps):
            loss = by_hand.mse(w, b, x, y)
            w.grad = b.grad = None
            loss.backward()
            w -= lr * w.grad
            b -= lr * b.grad
            losses.append(loss.item())
        return w, b, losses

    assert_fails("01.2", fit, "leaf Variable", "torch.no_grad()")


def test_fit_line_not_converged_fails_on_the_tolerance_case():
    def fit(x, y, lr, steps):  # correct steps, but stops updating after 30
        w, b, losses = by_hand.fit_line(x, y, lr, min(steps, 30))
        return w, b, losses + losses[-1:] * (steps - len(losses))

    assert_fails("01.2", fit, "300 steps", "losses[30] differs", "step:     31")


def test_fit_line_wrong_start_fails_at_step_0():
    def fit(x, y, lr, steps):
        w = torch.ones((), requires_grad=True)
        b = torch.ones((), requires_grad=True)
        losses = []
        for _ in range(steps):
            loss = by_hand.mse(w, b, x, y)
            w.grad = b.grad = None
            loss.backward()
            by_hand.gd_step([w, b], lr)
            losses.append(loss.item())
        return w, b, losses

    assert_fails("01.2", fit, "seed=1, lr=0.1", "losses[0] differs", "the loss at w = b = 0")


def test_fit_line_returning_the_wrong_parameters_is_named():
    def fit(x, y, lr, steps):
        _, _, losses = by_hand.fit_line(x, y, lr, steps)
        return torch.zeros((), requires_grad=True), torch.zeros((), requires_grad=True), losses

    assert_fails("01.2", fit, "(w, b) after 5 steps differ", "return the parameters after the last update")


# --------------------------------------------------------------------------
# 01.3 The gradient of the MSE, by hand
# --------------------------------------------------------------------------


def mse_grads_with_sums(w, b, x, y):
    """Correct, written differently: explicit sums over n."""
    n = x.numel()
    r = w * x + b - y
    return (2 / n) * torch.sum(x * r), (2 / n) * torch.sum(r)


def test_mse_grads_reference_and_alternative_pass():
    assert_passes("01.3", by_hand.mse_grads)
    assert_passes("01.3", mse_grads_with_sums)


@pytest.mark.parametrize(
    "wrong, phrase",
    [
        (lambda w, b, x, y: (((w * x + b - y) * x).mean(), (w * x + b - y).mean()), "factor 2"),
        (
            lambda w, b, x, y: (2 * ((w * x + b - y) * x).sum(), 2 * (w * x + b - y).sum()),
            "sum instead of a mean",
        ),
        (lambda w, b, x, y: (2 * ((y - w * x - b) * x).mean(), 2 * (y - w * x - b).mean()), "sign error"),
        (
            lambda w, b, x, y: (2 * (w * x + b - y).mean(), 2 * (w * x + b - y).mean()),
            "missing the factor x_i",
        ),
        (
            lambda w, b, x, y: (2 * (w * x + b - y).mean() * x.mean(), 2 * (w * x + b - y).mean()),
            "multiplies the means",
        ),
        (lambda w, b, x, y: (2 * (w * x + b - y).mean(), 2 * ((w * x + b - y) * x).mean()), "swapped"),
    ],
)
def test_mse_grads_typical_mistakes_are_named(wrong, phrase):
    assert_fails("01.3", wrong, phrase)


def test_mse_grads_with_autograd_is_refused():
    def with_backward(w, b, x, y):
        by_hand.mse(w, b, x, y).backward()
        return w.grad, b.grad

    assert_fails("01.3", with_backward, "not with autograd")


def test_mse_grads_with_autograd_switched_on_is_refused():
    def with_autograd(w, b, x, y):
        w.requires_grad_()
        b.requires_grad_()
        return torch.autograd.grad(by_hand.mse(w, b, x, y), (w, b))

    assert_fails("01.3", with_autograd, "made w or b require grad", "not with autograd")


def test_mse_grads_that_modifies_its_input_fails():
    def in_place(w, b, x, y):
        x -= 0  # harmless value, but in place on the caller's data
        x.mul_(1.0)
        y.sub_(w * x + b).neg_()  # y now holds the residual
        return 2 * (y * x).mean(), 2 * y.mean()

    assert_fails("01.3", in_place, "modified its input")


def autograd_on_copies(w, b, x, y):
    """autograd on detached copies: w and b are never touched, only the statement forbids it."""
    w, b = w.detach().requires_grad_(), b.detach().requires_grad_()
    with torch.enable_grad():
        return torch.autograd.grad(by_hand.mse(w, b, x, y), (w, b))


def backward_on_copies(w, b, x, y):
    w, b = w.detach().requires_grad_(), b.detach().requires_grad_()
    by_hand.mse(w, b, x, y).backward()
    return w.grad, b.grad


@pytest.mark.refuses_library
@pytest.mark.parametrize(
    "candidate, called", [(autograd_on_copies, "grad"), (backward_on_copies, "backward")]
)
def test_mse_grads_with_autograd_on_copies_is_refused(candidate, called):
    assert_fails("01.3", candidate, f"your code calls torch's own {called}")


@pytest.mark.refuses_library
def test_gd_step_through_torch_sgd_is_refused():
    def through_sgd(params, lr):
        torch.optim.SGD(params, lr=lr).step()

    assert_fails("01.1", through_sgd, "torch's own SGD")
    assert_fails("01.1", by_hand.gd_step, "the reference")


def _gd_step_by_hand(params, lr):
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.sub_(lr * p.grad)


@pytest.mark.refuses_library
def test_answers_written_by_hand_are_not_refused():
    assert_passes("01.1", _gd_step_by_hand)
    assert_passes("01.3", mse_grads_with_sums)


def test_gd_step_by_slices_fails_on_0_dim_parameters():
    def by_slices(params, lr):
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p[:] = p - lr * p.grad

    assert_fails("01.1", by_slices, "0-dim parameters", "IndexError")


def test_gd_step_with_a_fixed_lr_is_named():
    def fixed(params, lr):
        _gd_step_by_hand(params, 0.1)

    assert_fails("01.1", fixed, "lr=0.5", "lr argument is ignored")


def test_gd_step_that_keeps_its_first_lr_fails_when_the_lr_changes():
    first = []

    def cached(params, lr):
        first.append(lr)
        _gd_step_by_hand(params, first[0] if len(first) > 3 else lr)  # the lr of its 4th call on

    assert_fails("01.1", cached, "then lr=0.2")
