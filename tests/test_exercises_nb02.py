"""The checkers of notebook 02 (the optimizer API bug clinic).

For every exercise: the reference and differently written correct loops pass;
the broken loop handed out in the notebook and other typical wrong loops fail
with a message naming the bug; the stub is "not attempted"; a crash is reported.
"""

import copy
import time

import pytest
import torch
import torch.nn.functional as F

from helpers import training
from helpers.checking import check


@pytest.fixture(autouse=True, scope="module")
def warm_up():
    """The first optimizer of a process imports torch._dynamo (seconds): pay it once, here."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


@pytest.fixture(autouse=True)
def stepwise_home(tmp_path, monkeypatch):
    monkeypatch.setenv("STEPWISE_HOME", str(tmp_path))
    monkeypatch.delenv("STEPWISE_GRADING", raising=False)


def verdict(exercise_id, candidate):
    start = time.perf_counter()
    result = check(exercise_id, candidate, strict=False)
    assert time.perf_counter() - start < 5, "a check must be fast"
    return result


def assert_passes(exercise_id, candidate):
    result = verdict(exercise_id, candidate)
    assert result.status == "passed", str(result)


def assert_fails(exercise_id, candidate, *phrases):
    result = verdict(exercise_id, candidate)
    assert result.status == "failed", str(result)
    for phrase in phrases:
        assert phrase in str(result), f"{phrase!r} not in:\n{result}"


# --------------------------------------------------------------------------
# 02.1 — forgotten zero_grad()
# --------------------------------------------------------------------------


def train_broken(model, optimizer, data, steps):  # the loop handed out in the notebook
    inputs, targets = data
    history = []
    for _ in range(steps):
        loss = F.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def train_zero_grad_last(model, optimizer, data, steps):
    inputs, targets = data
    history = []
    for _ in range(steps):
        loss = F.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)  # zeros instead of None: same steps
        history.append(loss.item())
    return history


def train_model_zero_grad(model, optimizer, data, steps):
    history = []
    step = 0
    while step < steps:
        model.zero_grad()
        loss = ((model(data[0]) - data[1]) ** 2).mean()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
        step += 1
    return history


def train_zero_grad_before_step(model, optimizer, data, steps):
    inputs, targets = data
    history = []
    for _ in range(steps):
        loss = F.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        history.append(loss.item())
    return history


def train_sum_loss(model, optimizer, data, steps):
    inputs, targets = data
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(model(inputs), targets, reduction="sum")
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def train_logging_after_step(model, optimizer, data, steps):
    inputs, targets = data
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(model(inputs), targets).backward()
        optimizer.step()
        history.append(F.mse_loss(model(inputs), targets).item())
    return history


def train_one_step_short(model, optimizer, data, steps):
    return training.train(model, optimizer, data, steps - 1)


def train_own_optimizer(model, optimizer, data, steps):
    return training.train(model, torch.optim.SGD(model.parameters(), lr=0.1), data, steps)


def train_own_adam(model, optimizer, data, steps):
    return training.train(model, torch.optim.Adam(model.parameters()), data, steps)


def train_cached_groups(model, optimizer, data, steps):
    """Rebuilds the optimizer from its defaults: same settings, but the groups and lr changes are lost."""
    fresh = type(optimizer)(model.parameters(), **optimizer.defaults)
    return training.train(model, fresh, data, steps)


def train_set_to_zero(model, optimizer, data, steps):
    """Correct: zero_grad(set_to_none=False) (zeros instead of None) gives the same numbers."""
    history = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=False)
        loss = F.mse_loss(model(data[0]), data[1])
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


@pytest.mark.parametrize("candidate", [training.train, train_zero_grad_last, train_model_zero_grad,
                                       train_set_to_zero])
def test_02_1_correct_loops_pass(candidate):
    assert_passes("02.1", candidate)


@pytest.mark.parametrize("candidate, phrases", [
    (train_broken, ["step:", "3", "matches the loop without zero_grad()",
                    "gradients accumulate across steps"]),
    (train_zero_grad_before_step, ["flat", "never changed"]),
    (train_sum_loss, ["step:", "1", "first to differ from the reference"]),
    (train_one_step_short, ["expected 12 values, one per step; got 11"]),
    (train_logging_after_step, ["log the loss after the update"]),
    (train_own_optimizer, ["SGD(lr=0.05, momentum=0.9", "builds its own optimizer"]),
    (train_own_adam, ["SGD(lr=0.1), seed 0", "first to differ"]),  # no cause: no replay matches
    (train_cached_groups, ["two param groups", "lrs × 0.97", "first to differ"]),
])
def test_02_1_wrong_loops_fail_naming_the_bug(candidate, phrases):
    assert_fails("02.1", candidate, *phrases)


# --------------------------------------------------------------------------
# 02.2 — step() before backward()
# --------------------------------------------------------------------------


def epochs_broken(model, optimizer, batches, epochs):  # the loop handed out in the notebook
    history = []
    for _ in range(epochs):
        total = 0.0
        for inputs, targets in batches:
            optimizer.zero_grad()
            loss = F.mse_loss(model(inputs), targets)
            optimizer.step()
            loss.backward()
            total += loss.item()
        history.append(total / len(batches))
    return history


def epochs_stale(model, optimizer, batches, epochs):
    history = []
    for _ in range(epochs):
        losses = []
        for inputs, targets in batches:
            loss = F.mse_loss(model(inputs), targets)
            optimizer.step()
            optimizer.zero_grad()
            loss.backward()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
    return history


def epochs_sum(model, optimizer, batches, epochs):
    history = []
    for _ in range(epochs):
        history.append(sum(training.training_step(model, optimizer, x, y) for x, y in batches))
    return history


def epochs_per_batch(model, optimizer, batches, epochs):
    return [training.training_step(model, optimizer, x, y) for _ in range(epochs) for x, y in batches]


def epochs_tensor_mean(model, optimizer, batches, epochs):
    history = []
    for _ in range(epochs):
        losses = torch.zeros(len(batches))
        for i, (inputs, targets) in enumerate(batches):
            optimizer.zero_grad()
            loss = F.mse_loss(model(inputs), targets)
            loss.backward()
            optimizer.step()
            losses[i] = loss.detach()
        history.append(losses.mean().item())
    return history


def epochs_total_outside(model, optimizer, batches, epochs):
    history = []
    total = 0.0  # a learner's slip: the accumulator outside the epoch loop
    for _ in range(epochs):
        for inputs, targets in batches:
            total += training.training_step(model, optimizer, inputs, targets)
        history.append(total / len(batches))
    return history


def epochs_losses_outside(model, optimizer, batches, epochs):
    history, losses = [], []
    for _ in range(epochs):
        for inputs, targets in batches:
            losses.append(training.training_step(model, optimizer, inputs, targets))
        history.append(sum(losses) / len(losses))
    return history


def epochs_last_batch(model, optimizer, batches, epochs):
    history = []
    for _ in range(epochs):
        for inputs, targets in batches:
            loss = training.training_step(model, optimizer, inputs, targets)
        history.append(loss)
    return history


def epochs_own_sgd(model, optimizer, batches, epochs):
    return training.train_epochs(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, epochs)


@pytest.mark.parametrize("candidate", [training.train_epochs, epochs_tensor_mean])
def test_02_2_correct_loops_pass(candidate):
    assert_passes("02.2", candidate)


@pytest.mark.parametrize("candidate, phrases", [
    (epochs_broken, ["epoch 1 is the first to differ", "like the loop with step() before backward()",
                     "never changed"]),
    (epochs_stale, ["previous step's gradient"]),
    (epochs_sum, ["sum of the epoch's batch losses"]),
    (epochs_per_batch, ["one per epoch; got 24"]),
    (epochs_total_outside, ["epoch 2 is the first to differ", "total is never reset"]),
    (epochs_losses_outside, ["epoch 2 is the first to differ", "never emptied"]),
    (epochs_last_batch, ["epoch 1 is the first to differ", "last batch's loss"]),
    (epochs_own_sgd, ["builds its own optimizer"]),
])
def test_02_2_wrong_loops_fail_naming_the_bug(candidate, phrases):
    assert_fails("02.2", candidate, *phrases)


# --------------------------------------------------------------------------
# 02.3 — an optimizer over another model's parameters
# --------------------------------------------------------------------------


def _loop_through(forward, optimizer, data, steps):
    """The notebook's loop body, with the loss computed through ``forward``."""
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(forward(data[0]), data[1])
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def fine_tune_broken(pretrained, data, steps, lr):  # the function handed out in the notebook
    optimizer = torch.optim.SGD(pretrained.parameters(), lr=lr)
    model = copy.deepcopy(pretrained)
    return model, _loop_through(model, optimizer, data, steps)


def fine_tune_state_dict(pretrained, data, steps, lr):
    model = torch.nn.Linear(pretrained.in_features, pretrained.out_features)
    model.load_state_dict(pretrained.state_dict())
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=lr)
    return model, training.train(model, optimizer, data, steps)


def fine_tune_in_place(pretrained, data, steps, lr):
    optimizer = torch.optim.SGD(pretrained.parameters(), lr=lr)
    return pretrained, training.train(pretrained, optimizer, data, steps)


def fine_tune_returns_original(pretrained, data, steps, lr):
    return pretrained, training.fine_tune(pretrained, data, steps, lr)[1]


def fine_tune_history_only(pretrained, data, steps, lr):
    return training.fine_tune(pretrained, data, steps, lr)[1]


def fine_tune_reverse(pretrained, data, steps, lr):
    """The mirror image of the broken setup: optimizer over the copy, forward through pretrained."""
    model = copy.deepcopy(pretrained)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return model, _loop_through(pretrained, optimizer, data, steps)


def fine_tune_fixed_lr(pretrained, data, steps, lr):
    return training.fine_tune(pretrained, data, steps, 0.1)


def fine_tune_shallow_copy(pretrained, data, steps, lr):
    model = copy.copy(pretrained)  # shares the parameter tensors
    return model, training.train(model, torch.optim.SGD(model.parameters(), lr=lr), data, steps)


@pytest.mark.parametrize("candidate", [training.fine_tune, fine_tune_state_dict])
def test_02_3_correct_versions_pass(candidate):
    assert_passes("02.3", candidate)


@pytest.mark.parametrize("candidate, phrases", [
    (fine_tune_broken, ["step:", "2", "optimizer holds pretrained.parameters()"]),
    (fine_tune_in_place, ["pretrained was changed", "copy"]),
    (fine_tune_returns_original, ["pretrained itself", "return the copy"]),
    (fine_tune_history_only, ["a tuple (model, history)"]),
    (fine_tune_reverse, ["pretrained's .grad was filled", "computed through pretrained"]),
    (fine_tune_fixed_lr, ["seed 1, SGD(lr=0.05)", "lr argument is ignored"]),
    (fine_tune_shallow_copy, ["pretrained was changed"]),
])
def test_02_3_wrong_versions_fail_naming_the_bug(candidate, phrases):
    assert_fails("02.3", candidate, *phrases)


# --------------------------------------------------------------------------
# 02.4 — tensors in the loss history
# --------------------------------------------------------------------------


def until_broken(model, optimizer, data, tol, max_steps):  # handed out in the notebook
    inputs, targets = data
    history = []
    for _ in range(max_steps):
        optimizer.zero_grad()
        loss = F.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        history.append(loss)
        if len(history) > 1 and history[-2] - history[-1] < tol:
            break
    return history


def until_detached(model, optimizer, data, tol, max_steps):
    history = until_broken(model, optimizer, data, tol, max_steps)
    return [h.detach() for h in history]


def until_flipped(model, optimizer, data, tol, max_steps):
    history = []
    for _ in range(max_steps):
        history.append(training.training_step(model, optimizer, *data))
        if len(history) > 1 and history[-1] - history[-2] < tol:
            break
    return history


def until_no_break(model, optimizer, data, tol, max_steps):
    return training.train(model, optimizer, data, max_steps)


def until_while(model, optimizer, data, tol, max_steps):
    history = [training.training_step(model, optimizer, *data)]
    improvement = float("inf")
    while len(history) < max_steps and improvement >= tol:
        history.append(training.training_step(model, optimizer, *data))
        improvement = history[-2] - history[-1]
    return history


def until_abs(model, optimizer, data, tol, max_steps):
    history = []
    for _ in range(max_steps):
        history.append(training.training_step(model, optimizer, *data))
        if len(history) > 1 and abs(history[-2] - history[-1]) < tol:
            break
    return history


@pytest.mark.parametrize("candidate", [training.train_until, until_while])
def test_02_4_correct_loops_pass(candidate):
    assert_passes("02.4", candidate)


@pytest.mark.parametrize("candidate, phrases", [
    (until_broken, ["loss tensors with grad_fn", "graph alive", "loss.item()"]),
    (until_detached, ["tensors", "not a tensor"]),
    (until_flipped, ["history[-2] - history[-1]"]),
    (until_no_break, ["never stops early"]),
    (until_abs, ["|history[-2] - history[-1]| < tol"]),
])
def test_02_4_wrong_loops_fail_naming_the_bug(candidate, phrases):
    assert_fails("02.4", candidate, *phrases)


# --------------------------------------------------------------------------
# Every exercise: the stub, and a crash
# --------------------------------------------------------------------------

IDS = ["02.1", "02.2", "02.3", "02.4"]


@pytest.mark.parametrize("exercise_id", IDS)
def test_stub_is_not_attempted(exercise_id):
    def stub(*args):
        raise NotImplementedError(f"Exercise {exercise_id}: replace this line with your code")

    assert verdict(exercise_id, stub).status == "not attempted"


@pytest.mark.parametrize("exercise_id", IDS)
def test_a_crash_is_reported_not_raised(exercise_id):
    def backward_on_a_float(model, *args):
        loss = 1.5
        loss.backward()

    result = verdict(exercise_id, backward_on_a_float)
    assert result.status == "failed"
    assert "AttributeError" in str(result) and "loss.backward()" in str(result)


# --------------------------------------------------------------------------
# The toy problem and the check's side effects
# --------------------------------------------------------------------------


def test_toy_problem_is_seeded_and_leaves_the_global_random_state_alone():
    state = torch.random.get_rng_state()
    x0, y0 = training.toy_data(seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    model = training.toy_model(seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(x0, training.toy_data(seed=0)[0]) and not torch.equal(
        x0, training.toy_data(seed=1)[0])
    assert torch.equal(model.weight, training.toy_model(seed=0).weight)
    # nn.Linear's own initialisation under manual_seed(seed): the model is an ordinary one
    torch.manual_seed(0)
    assert torch.equal(model.weight, torch.nn.Linear(5, 2).weight)
    torch.random.set_rng_state(state)


def test_the_first_loss_is_the_mse_of_the_untrained_model():
    model, data = training.toy_model(seed=3), training.toy_data(seed=3)
    expected = ((model(data[0]) - data[1]) ** 2).mean().item()
    history = training.train(model, torch.optim.SGD(model.parameters(), lr=0.1), data, steps=5)
    assert history[0] == pytest.approx(expected, rel=1e-6)
    assert history == sorted(history, reverse=True)  # plain SGD, small lr: decreasing


def test_a_check_leaves_the_thread_count_alone():
    threads = torch.get_num_threads()
    verdict("02.1", training.train)
    assert torch.get_num_threads() == threads


@pytest.mark.refuses_library
@pytest.mark.parametrize("exercise_id, candidate", [
    ("02.1", lambda model, optimizer, data, steps: [training.training_step(model, optimizer, *data)
                                                   for _ in range(steps)]),
    ("02.2", lambda model, optimizer, batches, epochs: [
        sum(training.training_step(model, optimizer, x, y) for x, y in batches) / len(batches)
        for _ in range(epochs)]),
])
def test_the_library_loop_is_not_an_answer(exercise_id, candidate):
    assert_fails(exercise_id, candidate, "calls the reference training_step")
