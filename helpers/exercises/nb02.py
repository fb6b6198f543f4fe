"""Notebook 02, the optimizer API: a bug clinic of four broken training loops.

Every checker runs the learner's loop and the reference loop (``helpers.training``)
on fresh seeded models and data, compares the loss histories step by step and
the trained parameters, and on a mismatch replays the known broken loops below
to name the bug the learner's loop still has.
"""

import contextlib
import copy
from functools import partial

import torch
import torch._dynamo  # noqa: F401
import torch.nn.functional as F

from helpers import training
from helpers.checking import Mismatch, case, exercise, hidden_pass, outside_candidate

# ``import torch._dynamo`` above: the first optimizer of a process imports it lazily, which
# takes seconds. Inside a timed check, a timeout could interrupt that import half-way and
# leave torch.optim broken for the rest of the session; here it happens before any timer.

# --------------------------------------------------------------------------
# Known broken steps. Each returns the loss as a float, like training.training_step.
# --------------------------------------------------------------------------


def _step_without_zero_grad(model, optimizer, x, y):
    loss = F.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _step_before_backward(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.mse_loss(model(x), y)
    optimizer.step()
    loss.backward()
    return loss.item()


def _step_with_stale_gradient(model, optimizer, x, y):
    loss = F.mse_loss(model(x), y)
    optimizer.step()
    optimizer.zero_grad()
    loss.backward()
    return loss.item()


def _step_logging_after_update(model, optimizer, x, y):
    training.training_step(model, optimizer, x, y)
    with torch.no_grad():
        return F.mse_loss(model(x), y).item()


ACCUMULATES = ("gradients accumulate across steps: backward() adds to .grad, so without "
               "optimizer.zero_grad() every step applies the sum of all gradients so far")
NEVER_UPDATES = ("step() found every .grad None (cleared by zero_grad(), not yet filled by "
                 "backward()), so the parameters never changed")
STALE = ("each step applied the previous step's gradient: call loss.backward() first, "
         "then optimizer.step()")

_BROKEN_STEPS = (
    (_step_without_zero_grad, "your loss history matches the loop without zero_grad(): " + ACCUMULATES),
    (_step_before_backward, "your loss history is flat, like the loop with step() before "
                            "backward(): " + NEVER_UPDATES),
    (_step_with_stale_gradient, "your loss history matches a loop with step() before "
                                "backward(): " + STALE),
    (_step_logging_after_update, "you log the loss after the update; log the loss of the "
                                 "step itself, the one you call backward() on"),
)


OWN_OPTIMIZER = ("your loop builds its own optimizer, SGD(lr=0.1), instead of stepping the one "
                 "it is given (with its own lrs, momentum and param groups)")


def _own_optimizer_full_batch(model, optimizer, data, steps):
    return training.train(model, torch.optim.SGD(model.parameters(), lr=0.1), data, steps)


def _own_optimizer_epochs(model, optimizer, batches, epochs):
    return training.train_epochs(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, epochs)


def _epochs_total_never_reset(model, optimizer, batches, epochs):
    history, total = [], 0.0
    for _ in range(epochs):
        total += sum(training.training_step(model, optimizer, x, y) for x, y in batches)
        history.append(total / len(batches))
    return history


def _epochs_losses_never_reset(model, optimizer, batches, epochs):
    history, losses = [], []
    for _ in range(epochs):
        losses += [training.training_step(model, optimizer, x, y) for x, y in batches]
        history.append(sum(losses) / len(losses))
    return history


def _epochs_last_batch(model, optimizer, batches, epochs):
    return [[training.training_step(model, optimizer, x, y) for x, y in batches][-1] for _ in range(epochs)]


def _epochs_weighted_by_size(model, optimizer, batches, epochs):
    history = []
    for _ in range(epochs):
        total = sum(training.training_step(model, optimizer, x, y) * len(x) for x, y in batches)
        history.append(total / sum(len(x) for x, _ in batches))
    return history


EPOCH_MISTAKES = (
    (_epochs_total_never_reset, "the epoch's total is never reset: `total = 0.0` belongs inside the "
                                "epoch loop, so each epoch's sum starts from zero"),
    (_epochs_losses_never_reset, "the list of batch losses is never emptied: each epoch's mean runs over "
                                 "every batch so far. Start a new list in every epoch"),
    (_epochs_last_batch, "each epoch logs its last batch's loss, not the mean over its batches"),
    (_epochs_weighted_by_size, "you weight each batch's loss by its size; the history is the mean of "
                               "the epoch's batch losses, total / len(batches), as in the loop you fix"),
)


def _full_batch(step):
    def train(model, optimizer, data, steps):
        x, y = data
        return [step(model, optimizer, x, y) for _ in range(steps)]

    return train


def _epochs(step, average=True):
    def train_epochs(model, optimizer, batches, epochs):
        history = []
        for _ in range(epochs):
            total = sum(step(model, optimizer, x, y) for x, y in batches)
            history.append(total / len(batches) if average else total)
        return history

    return train_epochs


# --------------------------------------------------------------------------
# Cases and comparisons
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _one_thread():
    """Run a checker on one thread: for these tiny tensors it is the fastest, and on a busy
    CPU it is ten times faster than two threads waiting for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _decaying_groups(params):
    """SGD with the weight and the bias in their own groups (lr 0.1 and 0.3), each lr × 0.97 after
    every step, as a scheduler would: a loop must use the optimizer it is given, as it is."""
    weight, bias = params
    optimizer = torch.optim.SGD([{"params": [weight]}, {"params": [bias], "lr": 0.3}], lr=0.1,
                                momentum=0.5)

    def decay(opt, args, kwargs):
        for group in opt.param_groups:
            group["lr"] *= 0.97

    optimizer.register_step_post_hook(decay)
    return optimizer


OPTIMIZERS = (
    ("SGD(lr=0.1)", lambda params: torch.optim.SGD(params, lr=0.1)),
    ("SGD(lr=0.05, momentum=0.9, weight_decay=0.01)",
     lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("Adam(lr=0.05)", lambda params: torch.optim.Adam(params, lr=0.05)),
)
# 02.1 and 02.2 also run a case of ≥ 150 steps whose lrs change between steps
DECAYING = "SGD with two param groups (lr 0.1, 0.3), lrs × 0.97 after every step"
# Issue 15, grading: the hidden cases also run an optimizer the notebook never shows
HIDDEN_OPTIMIZERS = (("RMSprop(lr=0.01, momentum=0.5)",
                      lambda params: torch.optim.RMSprop(params, lr=0.01, momentum=0.5)),)


def _setup(seed, make_optimizer):
    """A fresh seeded model, its optimizer and the seed's data."""
    model = training.toy_model(seed)
    return model, make_optimizer(model.parameters()), training.toy_data(seed)


def _batches(data, size=8):
    x, y = data
    return list(zip(x.split(size), y.split(size)))


def _floats(history, what):
    """``history`` as a list of floats, or a Mismatch saying why it is not one."""
    if not isinstance(history, (list, tuple)):
        raise Mismatch(what, expected="a list of floats", got=history,
                       cause="return the loss history as a list, one float per step")
    tensors = [h for h in history if isinstance(h, torch.Tensor)]
    if any(t.grad_fn is not None for t in tensors):
        raise Mismatch(what, expected="a list of floats", got=f"a list holding {len(tensors)} "
                       "loss tensors with grad_fn",
                       cause="your history holds the loss tensors themselves: each one keeps its "
                             "step's graph alive for as long as you keep the list. "
                             "Log loss.item(), a plain float")
    if tensors:
        raise Mismatch(what, expected="a list of floats", got=f"a list holding {len(tensors)} "
                       "tensors", cause="log loss.item(), a plain Python float, not a tensor")
    if not all(isinstance(h, float) for h in history):
        kinds = sorted({type(h).__name__ for h in history})
        raise Mismatch(what, expected="a list of floats", got=f"a list of {', '.join(kinds)}",
                       cause="log loss.item(), a plain Python float")
    return list(history)


def _same(a, b):
    return len(a) == len(b) and torch.allclose(torch.tensor(a, dtype=torch.float64),
                                               torch.tensor(b, dtype=torch.float64),
                                               rtol=1e-5, atol=1e-7)


def _first_difference(expected, got):
    """1-based index of the first entry where the histories differ (or the shorter length + 1)."""
    for i, (e, g) in enumerate(zip(expected, got), start=1):
        if not _same([e], [g]):
            return i
    return min(len(expected), len(got)) + 1


def _compare_history(what, expected, got, known, per="step", count_is_cause=True):
    """Raise a Mismatch naming the first differing entry and, if recognised, the known bug.

    ``known`` is a list of ``(run, cause)``: ``run()`` replays a broken loop and gives
    its history; it is called only when the histories differ.
    """
    if _same(expected, got):
        return
    cause = next((c for run, c in known if _same(run(), got)), None)
    if cause is None and count_is_cause and len(got) != len(expected):
        cause = f"expected {len(expected)} values, one per {per}; got {len(got)}"
    i = _first_difference(expected, got)

    def shown(history):
        return round(history[i - 1], 6) if i <= len(history) else "nothing (history ended)"

    differs = f"the loss of {per} {i} is the first to differ from the reference loop's"
    where = dict(step=i, detail=differs) if per == "step" else dict(detail=differs)
    raise Mismatch(what, expected=shown(expected), got=shown(got), **where, cause=cause)


def _compare_params(what, expected_model, got_model, cause=None, note=None):
    """``cause``: what alone can leave these weights different; ``note``: a guess, shown as a detail."""
    for (name, e), g in zip(expected_model.named_parameters(), got_model.parameters()):
        if not torch.allclose(e, g, rtol=1e-5, atol=1e-7):
            detail = f"parameter {name}" + (f" ({note})" if note else "")
            raise Mismatch(what, expected=e.detach(), got=g.detach(), detail=detail, cause=cause)


def _run_loop(loop, seed, make_optimizer, steps, batched=False, size=6):
    """(history, model) of ``loop`` on a fresh seeded set-up (in batches of ``size``)."""
    model, optimizer, data = _setup(seed, make_optimizer)
    if batched:
        data = _batches(data, size)
    return loop(model, optimizer, data, steps), model


def _history(loop, *args, **kwargs):
    return _run_loop(loop, *args, **kwargs)[0]


def _check_loop(candidate, reference, broken, steps, batched=False, per="step", long=None):
    """The shared checker of 02.1 and 02.2: every optimizer, seeds 0, 1, 2 (and ``long``, seed 3)."""
    cases = [(seed, name, make, steps) for seed, (name, make) in enumerate(OPTIMIZERS)]
    if long:
        cases.append((len(cases), *long))
    size = 6  # 32 examples: a last batch of 2, so a mean weighted by batch size differs
    if hidden_pass():  # issue 15, grading: other seeds, lengths, optimizers and batch sizes
        cases = [(10 + seed, f"hidden: {name}", make, steps + 5)
                 for seed, (name, make) in enumerate(OPTIMIZERS + HIDDEN_OPTIMIZERS)]
        size = 5
    for seed, name, make_optimizer, steps in cases:
        what = f"{name}, seed {seed}, {steps} {'epochs' if batched else 'steps'}"
        with outside_candidate():  # the candidate runs inside case(), watched
            expected, expected_model = _run_loop(reference, seed, make_optimizer, steps, batched, size)
            with case(what):
                got, got_model = _run_loop(candidate, seed, make_optimizer, steps, batched, size)
            got = _floats(got, what)
            known = [(partial(_history, loop, seed, make_optimizer, steps, batched, size), cause)
                     for loop, cause in broken]
            _compare_history(what, expected, got, known, per)
            _compare_params(what, expected_model, got_model,
                            note="the losses match, the trained weights do not: a step more or fewer "
                                 "than the losses you log, or another model or optimizer trained")
    also = f"; and {long[2]} {'epochs' if batched else 'steps'} of {long[0]}" if long else ""
    return (f"{len(OPTIMIZERS)} optimizers (SGD, SGD with momentum and weight decay, Adam){also}: "
            f"the loss of every {per} and the trained weights match the reference loop")


# --------------------------------------------------------------------------
# 02.1 — forgotten zero_grad()
# --------------------------------------------------------------------------


@exercise("02.1", "Fix the loop: forgotten zero_grad()", reference=training.train,
          library=[training.training_step], hints=[
    ("Run the broken loop and look at its loss curve: it goes down, then swings up. What does "
     "loss.backward() do to a .grad that already holds a value?"),
    ("backward() *adds* to .grad. Something must clear the gradients once per step, before the "
     "new backward()."),
    "Put optimizer.zero_grad() as the first line of the loop body, before the forward pass.",
])
@_one_thread()
def check_train(candidate):
    broken = [(_full_batch(step), cause) for step, cause in _BROKEN_STEPS]
    broken.append((_own_optimizer_full_batch, OWN_OPTIMIZER))
    return _check_loop(candidate, training.train, broken, steps=12, long=(DECAYING, _decaying_groups, 150))


# --------------------------------------------------------------------------
# 02.2 — step() before backward()
# --------------------------------------------------------------------------


@exercise("02.2", "Fix the loop: step() before backward()", reference=training.train_epochs,
          library=[training.training_step],
          hints=[
    "The broken loop's loss never moves. At the moment step() runs, what is in p.grad?",
    ("zero_grad() has just set every .grad to None and backward() has not run yet, so step() "
     "skips every parameter. The order must be: zero_grad → forward → backward → step."),
    "Swap two lines: loss.backward() first, then optimizer.step(). Keep logging loss.item().",
])
@_one_thread()
def check_train_epochs(candidate):
    broken = [(_epochs(step), cause) for step, cause in _BROKEN_STEPS]
    broken.append((_epochs(training.training_step, average=False),
                   ("you return the sum of the epoch's batch losses: divide by the number of "
                    "batches to get the mean")))
    broken += [*EPOCH_MISTAKES, (_own_optimizer_epochs, OWN_OPTIMIZER)]
    return _check_loop(candidate, training.train_epochs, broken, steps=4, batched=True,
                       per="epoch", long=(DECAYING, _decaying_groups, 40))


# --------------------------------------------------------------------------
# 02.3 — an optimizer over another model's parameters
# --------------------------------------------------------------------------


def _fine_tune_original_optimizer(pretrained, data, steps, lr):
    model = copy.deepcopy(pretrained)
    optimizer = torch.optim.SGD(pretrained.parameters(), lr=lr)
    return model, training.train(model, optimizer, data, steps)


def _fine_tune_original_history(seed, data, steps, lr):
    return _fine_tune_original_optimizer(training.toy_model(seed), data, steps, lr)[1]


def _fine_tune_fixed_lr_history(seed, data, steps, lr):
    return training.fine_tune(training.toy_model(seed), data, steps, 0.1)[1]


FINE_TUNE_CASES = ((0, 0.1, 10), (1, 0.05, 6), (2, 0.02, 150))
FINE_TUNE_HIDDEN = ((10, 0.07, 13), (11, 0.2, 4))
FORWARD_THROUGH_PRETRAINED = (
    "pretrained's .grad was filled: your loss is computed through pretrained, not through the copy "
    "you train and return. Compute it with model(inputs), the copy"
)


@exercise("02.3", "Fix the loop: an optimizer over another model", reference=training.fine_tune,
          hints=[
    ("After the broken fine_tune, compare model.weight.grad with pretrained.weight.grad. Which "
     "model's parameters does the optimizer hold?"),
    ("backward() fills the .grad of the tensors the forward pass used (the copy's); step() updates "
     "the tensors the optimizer was built with (the original's, whose .grad stays None)."),
    "Build the optimizer after the copy, over model.parameters(), not pretrained.parameters().",
])
@_one_thread()
def check_fine_tune(candidate):
    hidden = hidden_pass()  # issue 15, grading: other seeds, lrs and lengths
    for seed, lr, steps in FINE_TUNE_HIDDEN if hidden else FINE_TUNE_CASES:
        what = ("hidden: " if hidden else "") + f"seed {seed}, SGD(lr={lr}), {steps} steps"
        data = training.toy_data(seed)
        expected_model, expected = training.fine_tune(training.toy_model(seed), data, steps, lr)
        pretrained = training.toy_model(seed)
        with case(what):
            answer = candidate(pretrained, data, steps, lr)
        if not (isinstance(answer, tuple) and len(answer) == 2):
            raise Mismatch(what, expected="a tuple (model, history)", got=answer,
                           cause="return the trained copy and its loss history: "
                                 "return model, history")
        got_model, got = answer
        got = _floats(got, what)
        _compare_params(what + ": pretrained", training.toy_model(seed), pretrained,
                        "pretrained was changed: fine-tune a copy (copy.deepcopy) and build the "
                        "optimizer over the copy's parameters")
        filled = [name for name, p in pretrained.named_parameters() if p.grad is not None]
        if filled:
            raise Mismatch(what + ": pretrained", expected="pretrained's .grad None, as given",
                           got=f".grad filled for {', '.join(filled)}", cause=FORWARD_THROUGH_PRETRAINED)
        original = partial(_fine_tune_original_history, seed, data, steps, lr)
        fixed_lr = partial(_fine_tune_fixed_lr_history, seed, data, steps, lr)
        _compare_history(what, expected, got, [(original, (
            "your loss history matches the loop whose optimizer holds pretrained.parameters(): "
            "backward() fills the copy's .grad, step() looks at the original's (None) and "
            "changes nothing")), (fixed_lr, "the lr argument is ignored: your SGD uses lr=0.1")])
        if got_model is pretrained:
            raise Mismatch(what, expected="the trained copy", got="pretrained itself",
                           cause="return the copy you trained, not the original")
        _compare_params(what + ": returned model", expected_model, got_model,
                        "the losses match but the returned model is not the one you trained")
    return (f"{len(FINE_TUNE_CASES)} cases (up to 150 steps): the copy is trained step for step like "
            "the reference, and pretrained is left untouched, its .grad included")


# --------------------------------------------------------------------------
# 02.4 — tensors in the loss history
# --------------------------------------------------------------------------


def _until_flawed(seed, make_optimizer, tol, max_steps, *, improvement):
    """``training.train_until`` with another stopping rule: ``improvement(previous, current) < tol``."""
    model, optimizer, (x, y) = _setup(seed, make_optimizer)
    history = []
    for _ in range(max_steps):
        history.append(training.training_step(model, optimizer, x, y))
        if len(history) > 1 and improvement(history[-2], history[-1]) < tol:
            break
    return history


UNTIL_MISTAKES = (
    (lambda previous, current: current - previous,
     "you stop when history[-1] - history[-2] < tol; the improvement is the previous loss minus the "
     "current one: history[-2] - history[-1]"),
    (lambda previous, current: abs(previous - current),
     "you stop when |history[-2] - history[-1]| < tol: a step that makes the loss worse is no "
     "improvement either, stop on history[-2] - history[-1] < tol"),
    (lambda previous, current: float("inf"),  # after |…|: on a rising loss both never stop
     "your loop never stops early: break right after the first step whose loss is less than tol "
     "below the previous one (history[-2] - history[-1] < tol)"),
)


# (seed, optimizer, tol, max_steps): stops early on a plateau, runs out of steps,
# stops when momentum makes the loss go up.
UNTIL_CASES = (
    (0, OPTIMIZERS[0], 0.02, 50),
    (1, OPTIMIZERS[0], 1e-4, 8),
    (2, ("SGD(lr=0.1, momentum=0.9)",
         lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9)), 0.0, 50),
)
UNTIL_HIDDEN = (
    (10, OPTIMIZERS[2], 0.005, 40),
    (11, HIDDEN_OPTIMIZERS[0], 1e-3, 13),
    (12, ("SGD(lr=0.0)", lambda params: torch.optim.SGD(params, lr=0.0)), 0.0, 6),  # improvement = tol
)


@exercise("02.4", "Fix the loop: tensors in the loss history", reference=training.train_until,
          library=[training.training_step],
          hints=[
    ("Look at type(history[0]) and history[0].grad_fn after the broken loop. What does that "
     "tensor still hold on to?"),
    ("A loss tensor keeps its graph alive for as long as you keep the tensor (and, until "
     "backward() runs, every tensor saved for backward). To log and compare, you need its value."),
    "Append loss.item() instead of loss; compare the floats in history exactly as before.",
])
@_one_thread()
def check_train_until(candidate):
    hidden = hidden_pass()  # issue 15, grading: other seeds, optimizers, tolerances and limits
    for seed, (name, make_optimizer), tol, max_steps in UNTIL_HIDDEN if hidden else UNTIL_CASES:
        what = ("hidden: " if hidden else "") + f"{name}, seed {seed}, tol={tol}, max_steps={max_steps}"
        expected_model, optimizer, data = _setup(seed, make_optimizer)
        expected = training.train_until(expected_model, optimizer, data, tol, max_steps)
        model, optimizer, data = _setup(seed, make_optimizer)
        with case(what):
            got = candidate(model, optimizer, data, tol, max_steps)
        got = _floats(got, what)
        known = [(partial(_until_flawed, seed, make_optimizer, tol, max_steps, improvement=rule), cause)
                 for rule, cause in UNTIL_MISTAKES]
        _compare_history(what, expected, got, known, count_is_cause=False)  # the stop decides the count
        _compare_params(what, expected_model, model,
                        note="the losses match, the trained weights do not: take the step of every "
                             "loss you log, the last one included, and stop right after it")
    return (f"{len(UNTIL_CASES)} cases (early stop, out of steps, loss going up): the same "
            "float history as the reference")
