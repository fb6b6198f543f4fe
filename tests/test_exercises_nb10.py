"""The checkers of notebook 10: references and correct alternatives pass; every listed mistake fails
naming its own cause; other wrong answers fail with a specific message; the library is refused; the
hidden cases of the grader catch an answer tuned to the visible ones."""

import copy
import math
import time

import pytest
import torch
from torch import nn

from helpers import lr_range_test, recipes
from helpers import checking
from helpers.checking import _exercises, check
from helpers.exercises import nb10
from helpers.nn import utils as ours

REFERENCES = {"10.1": lr_range_test.lr_range_test, "10.2": recipes.warmup_cosine_lr,
              "10.3": ours.clip_grad_norm_, "10.4": ours.clip_grad_value_, "10.5": recipes.train_accumulated,
              "10.6": recipes.EMA, "10.7": recipes.amp_train_step}
MISTAKES = {"10.1": nb10.RANGE_MISTAKES, "10.2": nb10.COSINE_MISTAKES, "10.3": nb10.CLIP_MISTAKES,
            "10.4": nb10.VALUE_MISTAKES, "10.5": nb10.ACCUMULATION_MISTAKES, "10.6": nb10.EMA_MISTAKES,
            "10.7": nb10.AMP_MISTAKES}


def assert_fails(result, cause=None):
    text = str(result)
    assert not result.passed, text
    if cause is not None:
        assert f"likely cause: {cause}" in text, text
    return text


@pytest.mark.parametrize("exercise_id", list(REFERENCES))
def test_the_reference_passes_quickly(exercise_id):
    check(exercise_id, REFERENCES[exercise_id])  # warm-up: first calls pay for lazy imports
    start = time.perf_counter()
    result = check(exercise_id, REFERENCES[exercise_id])
    assert result.passed, str(result)
    assert time.perf_counter() - start < 0.5 * 3  # < 0.5 s alone; the machine is shared


@pytest.mark.parametrize("exercise_id", list(REFERENCES))
def test_the_reference_passes_the_hidden_cases(exercise_id, monkeypatch):
    monkeypatch.setattr(checking, "_hidden", True)
    assert _exercises()[exercise_id].checker(REFERENCES[exercise_id])  # no Mismatch: a description


CASES = [(ex, text, wrong) for ex, mistakes in MISTAKES.items() for text, wrong in mistakes.items()]


@pytest.mark.parametrize(("exercise_id", "cause", "wrong"), CASES,
                         ids=[f"{ex}-{i}" for i, (ex, _, _) in enumerate(CASES)])
def test_each_mistake_fails_with_its_cause(exercise_id, cause, wrong):
    assert_fails(check(exercise_id, wrong), cause)


# ------------------------------------------------------------------ correct alternatives


def range_test_with_a_scheduler(model, loss_fn, batches, optimizer, *, start_lr=1e-7, end_lr=10.0,
                                num_steps=100, smoothing=0.98, diverge=4.0):
    """The sweep by torch's ExponentialLR, the restore through state_dict()s, the EMA unrolled."""
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    lr_0 = optimizer.param_groups[0]["lr"]
    for group in optimizer.param_groups:
        group["lr"] *= start_lr / lr_0
    gamma = (end_lr / start_lr) ** (1 / (num_steps - 1))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    lrs, losses, smoothed = [], [], []
    for i, (x, y) in enumerate(batches[:num_steps]):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        lrs.append(optimizer.param_groups[0]["lr"])
        losses.append(loss.item())
        weights = [(1 - smoothing) * smoothing ** (i - j) for j in range(i + 1)]
        smoothed.append(sum(w * v for w, v in zip(weights, losses)) / sum(weights))
        if not math.isfinite(smoothed[-1]) or smoothed[-1] > diverge * min(smoothed):
            break
        loss.backward()
        optimizer.step()
        scheduler.step()
    model.load_state_dict(saved_model)
    optimizer.load_state_dict(saved_optimizer)
    return lrs, losses, smoothed


def warmup_cosine_by_interpolation(step, base_lr, warmup_steps, total_steps, min_lr=0.0, *, from_zero=False):
    """The warmup as a linear interpolation between two lrs, the cosine with torch on float64."""
    W = warmup_steps
    if step < W:
        start = 0.0 if from_zero else base_lr / (W + 1)
        return start + (base_lr - start) * step / W
    p = torch.tensor((step - W) / (total_steps - W), dtype=torch.float64)
    return float(min_lr + (base_lr - min_lr) * 0.5 * (1 + torch.cos(math.pi * p)))


def clip_by_hand(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Concatenate the gradients into one vector; scale with a Python float."""
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    total = flat.abs().max() if math.isinf(norm_type) else flat.abs().pow(norm_type).sum().pow(1 / norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError("non-finite total norm")
    factor = min(1.0, max_norm / (total.item() + 1e-6))
    with torch.no_grad():
        for g in grads:
            g *= factor
    return total


def clip_value_by_where(parameters, clip_value):
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    for p in params:
        if p.grad is not None:
            p.grad.copy_(torch.where(p.grad > clip_value, clip_value,
                                     torch.where(p.grad < -clip_value, -clip_value, p.grad)))


def accumulate_with_sum_loss(model, loss_fn, optimizer, scheduler, micro_batches, accumulation_steps):
    """Sum-reduced losses divided by the group's sample count; zero_grad after the step."""
    losses = []
    optimizer.zero_grad()
    k = accumulation_steps
    for group in [micro_batches[i:i + k] for i in range(0, len(micro_batches), k)]:
        n = sum(len(y) for _, y in group)
        total = 0.0
        for x, y in group:
            loss = nn.functional.cross_entropy(model(x), y, reduction="sum") / n
            loss.backward()
            total += loss.item()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(total)
    return losses


class EMAWithStateDict(nn.Module):
    """Averages over state_dict() entries, an explicit weighted sum, a flag instead of a counter."""

    def __init__(self, model, decay=0.999, use_buffers=False):
        super().__init__()
        self.module, self.decay, self.use_buffers = copy.deepcopy(model), decay, use_buffers
        self.started = False

    def forward(self, x):
        return self.module(x)

    @torch.no_grad()
    def update_parameters(self, model):
        params = {name for name, _ in model.named_parameters()}
        mine = self.module.state_dict()
        for name, value in model.state_dict().items():
            averaged = name in params or self.use_buffers
            if self.started and averaged and value.is_floating_point():
                mine[name].copy_(self.decay * mine[name] + (1 - self.decay) * value)
            else:
                mine[name].copy_(value)
        self.started = True


def amp_step_with_found_inf(model, loss_fn, x, y, optimizer, scaler, scheduler, max_norm):
    """The skip read from the scaler's record of non-finite gradients, before it steps."""
    optimizer.zero_grad(set_to_none=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    skipped = any(v.item() for v in scaler._found_inf_per_device(optimizer).values())
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    if not skipped:
        scheduler.step()
    return not skipped


@pytest.mark.parametrize(("exercise_id", "candidate"), [
    ("10.1", range_test_with_a_scheduler), ("10.7", amp_step_with_found_inf),
    ("10.2", warmup_cosine_by_interpolation), ("10.3", clip_by_hand),
    ("10.4", clip_value_by_where),
    ("10.5", accumulate_with_sum_loss), ("10.6", EMAWithStateDict),
])
def test_correct_alternatives_pass(exercise_id, candidate):
    result = check(exercise_id, candidate)
    assert result.passed, str(result)


# ------------------------------------------------------------------ other wrong answers


@pytest.mark.parametrize(("flag", "message"), [
    ("no_restore_model", "leave the model as it found it"),
    ("no_restore_optimizer", "leave the optimizer as it found it")])
def test_a_range_test_that_does_not_restore_fails(flag, message):
    assert message in assert_fails(check("10.1", nb10._range_wrong(**{flag: True})))


def test_a_range_test_returning_tensors_is_told_to_return_floats():
    def tensors(*args, **kwargs):
        result = lr_range_test.lr_range_test(*args, **kwargs)
        return list(result.lrs), [torch.tensor(v) for v in result.losses], list(result.smoothed)

    assert "losses must be a list of Python floats" in assert_fails(check("10.1", tensors))


def test_a_cosine_returning_a_tensor_is_told_to_return_a_float():
    def tensor_lr(step, base_lr, warmup_steps, total_steps, min_lr=0.0, *, from_zero=False):
        return torch.tensor(recipes.warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, min_lr,
                                                     from_zero=from_zero))

    assert "return the lr as a float" in assert_fails(check("10.2", tensor_lr))


def test_clipping_out_of_place_is_named():
    def out_of_place(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
        params = list(parameters) if not isinstance(parameters, torch.Tensor) else [parameters]
        total = ours.get_total_norm([p.grad for p in params if p.grad is not None], norm_type)
        for p in params:
            if p.grad is not None:
                p.grad = p.grad * torch.clamp(max_norm / (total + 1e-6), max=1.0)
        return total

    assert "clip in place" in assert_fails(check("10.3", out_of_place))


def test_a_generator_iterated_twice_fails():
    def twice(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
        if isinstance(parameters, torch.Tensor):
            parameters = [parameters]
        total = ours.get_total_norm([p.grad for p in parameters if p.grad is not None], norm_type)
        for p in parameters:  # a generator is empty now
            if p.grad is not None:
                p.grad.mul_(torch.clamp(max_norm / (total + 1e-6), max=1.0))
        return total

    assert "a generator" in assert_fails(check("10.3", twice))


def test_a_none_gradient_filled_in_is_named():
    def fills_none(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
        params = list(parameters) if not isinstance(parameters, torch.Tensor) else [parameters]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        return ours.clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite)

    assert "must keep it None" in assert_fails(check("10.3", fills_none))


def test_ignoring_error_if_nonfinite_fails():
    def never_raises(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
        return ours.clip_grad_norm_(parameters, max_norm, norm_type, False)

    assert "raise RuntimeError" in assert_fails(check("10.3", never_raises))


def test_an_ema_sharing_the_models_tensors_fails():
    class Alias(recipes.EMA):
        def __init__(self, model, decay=0.999, use_buffers=False):
            super().__init__(model, decay, use_buffers)
            self.module = model

    assert "copy.deepcopy(model)" in assert_fails(check("10.6", Alias))


def test_an_ema_that_moves_the_live_model_fails():
    class Backwards(recipes.EMA):
        @torch.no_grad()
        def update_parameters(self, model):
            for mine, theirs in zip(self.module.parameters(), model.parameters()):
                theirs.lerp_(mine, 1 - self.decay)
                mine.copy_(theirs)

    assert "never the model it reads from" in assert_fails(check("10.6", Backwards))


def test_an_accumulation_stepping_once_per_micro_batch_fails():
    def every_micro_batch(model, loss_fn, optimizer, scheduler, micro_batches, accumulation_steps):
        return recipes.train_accumulated(model, loss_fn, optimizer, scheduler, micro_batches, 1)

    assert "optimizer steps" in assert_fails(check("10.5", every_micro_batch))


# ------------------------------------------------------------------ hidden cases


def test_hidden_cases_catch_answers_tuned_to_the_visible_ones(monkeypatch):
    def cosine_wrong_for_w3(step, base_lr, warmup_steps, total_steps, min_lr=0.0, *, from_zero=False):
        lr = warmup_cosine_by_interpolation(step, base_lr, warmup_steps, total_steps, min_lr,
                                            from_zero=from_zero)
        return lr * 1.01 if warmup_steps == 3 else lr

    def clip_wrong_for_p25(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
        return clip_by_hand(parameters, max_norm, 2.0 if norm_type == 2.5 else norm_type, error_if_nonfinite)

    class EMAWrongForDecay06(EMAWithStateDict):
        def __init__(self, model, decay=0.999, use_buffers=False):
            super().__init__(model, 0.5 if decay == 0.6 else decay, use_buffers)

    def accumulation_wrong_for_seed5(model, loss_fn, optimizer, scheduler, micro_batches, accumulation_steps):
        k = 2 if len(micro_batches) == 7 and len(micro_batches[-1][1]) == 13 else accumulation_steps
        return accumulate_with_sum_loss(model, loss_fn, optimizer, scheduler, micro_batches, k)

    def amp_wrong_for_three_broken(model, loss_fn, x, y, optimizer, scaler, scheduler, max_norm):
        counts = optimizer.__dict__.setdefault("calls", [0])
        counts[0] += 1
        return amp_step_with_found_inf(model, loss_fn, x, y, optimizer, scaler, scheduler,
                                       max_norm * (2 if counts[0] == 9 else 1))

    def range_wrong_for_30_steps(model, loss_fn, batches, optimizer, **kwargs):
        if kwargs["num_steps"] == 30:
            kwargs["smoothing"] = 0.9
        return range_test_with_a_scheduler(model, loss_fn, batches, optimizer, **kwargs)

    tuned = {"10.1": range_wrong_for_30_steps, "10.7": amp_wrong_for_three_broken,
             "10.2": cosine_wrong_for_w3, "10.3": clip_wrong_for_p25, "10.6": EMAWrongForDecay06,
             "10.5": accumulation_wrong_for_seed5}
    for exercise_id, candidate in tuned.items():
        assert check(exercise_id, candidate).passed
    monkeypatch.setenv("STEPWISE_GRADING", "1")
    for exercise_id, candidate in tuned.items():
        with pytest.raises(AssertionError, match="hidden case"):
            check(exercise_id, candidate)


# ------------------------------------------------------------------ the library is not an answer


@pytest.mark.refuses_library
@pytest.mark.parametrize(("exercise_id", "library"), [
    ("10.1", lr_range_test.lr_range_test), ("10.2", recipes.warmup_cosine_lr),
    ("10.3", torch.nn.utils.clip_grad_norm_),
    ("10.3", ours.clip_grad_norm_), ("10.4", torch.nn.utils.clip_grad_value_),
    ("10.4", ours.clip_grad_value_),
    ("10.5", recipes.train_accumulated), ("10.6", recipes.EMA), ("10.6", torch.optim.swa_utils.AveragedModel),
    ("10.7", recipes.amp_train_step),
])
def test_the_library_is_refused(exercise_id, library):
    assert "the exercise is to write it yourself" in assert_fails(check(exercise_id, library))


@pytest.mark.refuses_library
def test_calling_the_library_is_refused():
    def delegating(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)

    class Averaged(torch.optim.swa_utils.AveragedModel):
        def __init__(self, model, decay=0.999, use_buffers=False):
            super().__init__(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay),
                             use_buffers=use_buffers)

    assert "the exercise is to write it yourself" in assert_fails(check("10.3", delegating))
    assert "the exercise is to write it yourself" in assert_fails(check("10.6", Averaged))
