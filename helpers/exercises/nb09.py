"""Notebook 09, checkpoint & exact resume: save, resume, a resumable loop, a new base lr.

The checkers run the learner's code in a real training run (``helpers.checkpoint``:
a small network, Adam with two param groups, warmup + cosine, random batches and
dropout) and compare with the uninterrupted run bit for bit: every loss, every lr,
the final weights. On a difference they name what was missed, by looking at the
state right after the resume (09.2) or by replaying the known wrong versions below
(09.3, 09.4); the tests feed those wrong versions back in.
"""

import contextlib
import copy
import math
import os
import pickle
import random
import tempfile

import torch
import torch._dynamo  # noqa: F401  (imported by the first optimizer step: not inside a timed check)
from torch import nn
from torch.optim import lr_scheduler as S

from helpers import checkpoint as ref
from helpers import training
from helpers.checking import Mismatch, case, exercise, hidden_pass
from helpers.checking_tools import format_lrs

# --------------------------------------------------------------------------
# Shared: runs, snapshots, differences
# --------------------------------------------------------------------------


def _seed(seed):
    torch.manual_seed(seed)
    random.seed(seed)


def _build():
    model = ref.build_model()
    optimizer = ref.build_optimizer(model)
    return model, optimizer, ref.build_scheduler(optimizer)


def _trained(seed, steps):
    """The run after ``steps`` steps: (model, optimizer, scheduler)."""
    _seed(seed)
    run = _build()
    ref.run_steps(*run, steps)
    return run


def _lrs(optimizer):
    return [group["lr"] for group in optimizer.param_groups]


def _difference(expected, got, where):
    """Where ``got`` first differs from ``expected`` (nested dicts, lists, tensors), or None."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"{where} is {type(got).__name__}, expected a tensor"
        if got.shape != expected.shape or got.dtype != expected.dtype:
            return (f"{where} has shape {tuple(got.shape)} {got.dtype}, "
                    f"expected {tuple(expected.shape)} {expected.dtype}")
        return None if torch.equal(got, expected) else f"{where} has other values"
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{where} is {type(got).__name__}, expected a dict"
        if set(got) != set(expected):
            return f"{where} has keys {sorted(map(str, got))}, expected {sorted(map(str, expected))}"
        return next((d for k in expected if (d := _difference(expected[k], got[k], f"{where}[{k!r}]"))), None)
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            return f"{where} is {got!r:.60}, expected {len(expected)} items"
        return next((d for i, (e, g) in enumerate(zip(expected, got))
                     if (d := _difference(e, g, f"{where}[{i}]"))), None)
    return None if got == expected else f"{where} is {got!r:.60}, expected {expected!r:.60}"


# --------------------------------------------------------------------------
# 09.1 — save a checkpoint
# --------------------------------------------------------------------------

_MISSING = {
    "step": "the step is missing: \"step\": step (the steps done, where the resumed loop continues)",
    "model": "the model's weights are missing: \"model\": model.state_dict()",
    "optimizer": "the optimizer's state is missing (Adam's moving averages and step counts, every "
                 "group's lr): \"optimizer\": optimizer.state_dict()",
    "scheduler": "the scheduler's state is missing (its last_epoch: without it the schedule restarts): "
                 "\"scheduler\": scheduler.state_dict()",
    "rng": "the RNG states are missing: without them the batches and dropout masks after a resume differ; "
           "\"rng\": {\"torch\": torch.get_rng_state(), \"python\": random.getstate()}",
}
_RNG_MISSING = {
    "torch": "torch's RNG state is missing (it draws the batches and dropout masks): "
             "\"torch\": torch.get_rng_state()",
    "python": "Python's RNG state is missing (random draws the augmentation): \"python\": random.getstate()",
}
_SAVE_CASES = (("a run after 3 steps (in the warmup)", 1, 3), ("a run after 9 steps", 2, 9))
_SAVE_HIDDEN = (("hidden: a run after 5 steps", 7, 5), ("hidden: a run after 12 steps", 8, 12))  # issue 15


def _expected_checkpoint(step, model, optimizer, scheduler):
    return copy.deepcopy({
        "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    })


def _load(name, path):
    """The checkpoint at ``path``, read the safe way; a Mismatch saying why it cannot be."""
    if not os.path.exists(path):
        raise Mismatch(name, "a file at path", "no file",
                       cause="nothing was written to `path`: torch.save(checkpoint, path)")
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        objects = _objects_in(path)
        raise Mismatch(name, "a file torch.load(path, weights_only=True) reads", "UnpicklingError",
                       cause=(f"you saved {objects}: weights_only=True loads only tensors, numbers, "
                              "strings and containers of them; save model.state_dict(), "
                              "optimizer.state_dict(), scheduler.state_dict()")
                       if objects else "the file holds objects weights_only=True refuses to load") from None
    except Exception as error:  # noqa: BLE001 (any other unreadable file)
        raise Mismatch(name, "a file written by torch.save", f"{type(error).__name__} when loading it",
                       cause="write the checkpoint dict with torch.save(checkpoint, path)") from None


def _objects_in(path):
    """The objects (not state dicts) a checkpoint holds, e.g. "the Sequential itself in "model"."""
    try:
        checkpoint = torch.load(path, weights_only=False)  # our own file, for the diagnosis only
    except Exception:  # noqa: BLE001
        return ""
    if not isinstance(checkpoint, dict):
        return ""
    kinds = (nn.Module, torch.optim.Optimizer, S.LRScheduler)
    return ", ".join(f"the {type(v).__name__} itself in \"{k}\""
                     for k, v in checkpoint.items() if isinstance(v, kinds))


def _expect_checkpoint(name, expected, got):
    if not isinstance(got, dict):
        raise Mismatch(name, "a dict", type(got).__name__, cause="save one dict with the keys "
                       "\"step\", \"model\", \"optimizer\", \"scheduler\", \"rng\"")
    missing = [k for k in expected if k not in got]
    if missing:
        raise Mismatch(name, sorted(expected), sorted(map(str, got)),
                       detail="the checkpoint's keys; missing: " + ", ".join(missing),
                       cause="; ".join(_MISSING[k] for k in missing))
    if isinstance(got["rng"], dict) and (missing := [k for k in expected["rng"] if k not in got["rng"]]):
        raise Mismatch(name, sorted(expected["rng"]), sorted(map(str, got["rng"])),
                       detail="the keys of checkpoint[\"rng\"]; missing: " + ", ".join(missing),
                       cause="; ".join(_RNG_MISSING[k] for k in missing))
    if got["step"] != expected["step"]:
        raise Mismatch(name, expected["step"], got["step"], detail="checkpoint[\"step\"]",
                       cause="save the `step` you were given: the number of steps done")
    for key in ("model", "optimizer", "scheduler"):
        where = _difference(expected[key], got[key], f"checkpoint[{key!r}]")
        if where:
            raise Mismatch(name, detail=where, cause=f"save {key}.state_dict() as it is at the call")
    if not isinstance(got["rng"], dict):
        raise Mismatch(name, "a dict {\"torch\": …, \"python\": …}", type(got["rng"]).__name__,
                       detail="checkpoint[\"rng\"]", cause=_MISSING["rng"])
    torch_state = got["rng"]["torch"]
    if not isinstance(torch_state, torch.Tensor):
        seed = isinstance(torch_state, int) and not isinstance(torch_state, bool)
        raise Mismatch(name, "a uint8 tensor", f"{torch_state!r:.60}",
                       detail="checkpoint[\"rng\"][\"torch\"]",
                       cause="a seed is not the generator's state: re-seeding restarts the random stream "
                             "from its beginning, not where the run was. Save torch.get_rng_state()" if seed
                       else "save torch.get_rng_state() itself, the uint8 tensor that torch.set_rng_state "
                            "takes back")
    if _difference(expected["rng"]["torch"], torch_state, ""):
        raise Mismatch(name, detail="checkpoint[\"rng\"][\"torch\"] is not the state at the call",
                       cause="save torch.get_rng_state() as it is when save_checkpoint is called, "
                             "without drawing random numbers first")
    if _difference(expected["rng"]["python"], got["rng"]["python"], ""):
        raise Mismatch(name, detail="checkpoint[\"rng\"][\"python\"] is not the state at the call",
                       cause="save random.getstate() (the whole state, not a seed) as it is at the call")


def _call_save(candidate, name, *args):
    with case(name):
        try:
            candidate(*args)
            return
        except (AttributeError, TypeError, pickle.PicklingError) as error:
            if "pickle" not in str(error):
                raise
    raise Mismatch(name, cause="torch.save could not pickle an object you gave it (the LambdaLR holds a "
                   "function defined inside another one): save the objects' state_dict()s, which hold "
                   "only tensors, numbers and containers")


def _expect_run_untouched(name, expected, model, optimizer, scheduler):
    rng = expected["rng"]
    if not torch.equal(torch.get_rng_state(), rng["torch"]) or random.getstate() != rng["python"]:
        raise Mismatch(name, detail="the RNG states after save_checkpoint",
                       cause="saving changed the run's random state (a seed, or random numbers drawn): "
                             "the run would go on differently than without the checkpoint")
    if _difference(expected["model"], model.state_dict(), "") or _difference(
            expected["optimizer"]["state"], optimizer.state_dict()["state"], ""):
        raise Mismatch(name, detail="the model or optimizer after save_checkpoint",
                       cause="saving must not change the model or the optimizer")
    if not model.training:
        raise Mismatch(name, "train mode", "eval mode", detail="the model after save_checkpoint",
                       cause="saving switched the model to eval mode (dropout off) and left it there: the "
                             "run would go on without dropout. model.state_dict() needs no eval()")
    if _difference(expected["optimizer"]["param_groups"], optimizer.state_dict()["param_groups"], "") or \
            _difference(expected["scheduler"], scheduler.state_dict(), ""):
        raise Mismatch(name, detail="the lrs or the scheduler after save_checkpoint",
                       cause="saving must not step the scheduler or change a group's lr")


@exercise("09.1", "Save a checkpoint", reference=ref.save_checkpoint, library=[ref.save], hints=[
    "One dict, one torch.save(checkpoint, path). Its keys: \"step\", \"model\", \"optimizer\", "
    "\"scheduler\", \"rng\". Which of the objects can weights_only=True load back, and which only "
    "through their state_dict()?",
    "Save model.state_dict(), optimizer.state_dict(), scheduler.state_dict(): tensors, numbers and "
    "containers only. The RNG states are torch.get_rng_state() (a tensor) and random.getstate() "
    "(a tuple of ints): the states, not seeds.",
    "torch.save({\"step\": step, \"model\": model.state_dict(), \"optimizer\": optimizer.state_dict(), "
    "\"scheduler\": scheduler.state_dict(), \"rng\": {\"torch\": torch.get_rng_state(), "
    "\"python\": random.getstate()}}, path)",
])
def check_save_checkpoint(candidate):
    for name, seed, steps in _SAVE_HIDDEN if hidden_pass() else _SAVE_CASES:
        model, optimizer, scheduler = _trained(seed, steps)
        expected = _expected_checkpoint(steps, model, optimizer, scheduler)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "checkpoint.pt")
            _call_save(candidate, name, path, steps, model, optimizer, scheduler)
            _expect_run_untouched(name, expected, model, optimizer, scheduler)
            checkpoint = _load(name, path)
        _expect_checkpoint(name, expected, checkpoint)
    return (f"{len(_SAVE_CASES)} runs (Adam, 2 param groups, warmup + cosine): one file that "
            "torch.load(weights_only=True) reads, with the step, the three state dicts and both RNG "
            "states as they were at the call")


# --------------------------------------------------------------------------
# 09.2 — resume exactly
# --------------------------------------------------------------------------

_RESUME_CASES = (("resume after 3 of 6 steps (inside the warmup)", 3, 3),
                 ("resume after 8 of 16 steps (in the cosine)", 4, 8),
                 ("resume after 5 of 10 steps", 5, 5))
_RESUME_HIDDEN = (("hidden: resume after 6 of 12 steps", 9, 6),  # issue 15, grading
                  ("hidden: resume after 2 of 4 steps", 10, 2))
_SCRAMBLE = 12345  # the new process's random state, before the resume restores the run's


def _snapshot(model, optimizer, scheduler):
    """What must be identical right after a resume (a copy)."""
    return copy.deepcopy({
        "model": model.state_dict(), "optimizer": optimizer.state_dict()["state"],
        "lrs": _lrs(optimizer), "last_epoch": getattr(scheduler, "last_epoch", None),
        "torch": torch.get_rng_state(), "python": random.getstate(),
    })


def _unpack(name, answer):
    if not (isinstance(answer, tuple) and len(answer) == 4):
        raise Mismatch(name, "(model, optimizer, scheduler, step)", answer,
                       cause="return model, optimizer, scheduler, step")
    model, optimizer, scheduler, step = answer
    for value, kind, what in ((model, nn.Module, "model"), (optimizer, torch.optim.Optimizer, "optimizer"),
                              (scheduler, S.LRScheduler, "scheduler")):
        if not isinstance(value, kind):
            raise Mismatch(name, f"a {kind.__name__}", type(value).__name__, detail=f"the returned {what}",
                           cause="return model, optimizer, scheduler, step, in that order")
    if not isinstance(step, int) or isinstance(step, bool):
        raise Mismatch(name, "an int", type(step).__name__, detail="the returned step",
                       cause="return checkpoint[\"step\"], the number of steps done")
    return answer


def _missed(expected, got, run, step, n, saved_rng):
    """Plain-words list of what the resume missed, from the state right after it."""
    model, optimizer, scheduler = run
    missed = []
    held = [p for group in optimizer.param_groups for p in group["params"]]
    if [id(p) for p in held] != [id(p) for p in model.parameters()]:
        missed.append("the optimizer does not hold the returned model's parameters: build it with "
                      "build_optimizer(model) on the model you return")
    if scheduler.optimizer is not optimizer:
        missed.append("the scheduler drives another optimizer than the one you return (one built before "
                      "it, or a second one): its steps never reach the returned optimizer's lrs. Build each "
                      "object once, in order: build_scheduler(optimizer) on the optimizer you return")
    if _difference(expected["model"], got["model"], ""):
        missed.append("the model's weights are not the checkpoint's: "
                      "model.load_state_dict(checkpoint[\"model\"])")
    optimizer_loaded = bool(got["optimizer"])
    if not optimizer_loaded:
        missed.append("the optimizer's state is not loaded: Adam has no exp_avg, exp_avg_sq or step, so the "
                      "first step after the resume is a fresh Adam step; "
                      "optimizer.load_state_dict(checkpoint[\"optimizer\"])")
    elif _difference(expected["optimizer"], got["optimizer"], ""):
        missed.append("the optimizer's state is not the checkpoint's")
    if got["last_epoch"] == 0:
        missed.append("the scheduler's state is not loaded: its last_epoch is 0, so the lr restarts the "
                      "warmup; scheduler.load_state_dict(checkpoint[\"scheduler\"])")
    elif got["last_epoch"] != n:
        missed.append(f"the scheduler's last_epoch is {got['last_epoch']}, expected {n}"
                      + (": a scheduler built with last_epoch=k steps once more while it is built, to k + 1. "
                         "Build it as at the start and load its state dict instead"
                         if got["last_epoch"] == n + 1 else ""))
    step_0 = [lr * ref.warmup_cosine()(0) for lr in (ref.BODY_LR, ref.HEAD_LR)]
    if optimizer_loaded and got["lrs"] != expected["lrs"] and _close(got["lrs"], step_0):
        missed.append("the scheduler was built after optimizer.load_state_dict: building it wrote the lr of "
                      f"step 1 ({format_lrs(step_0)}) into the groups, and scheduler.load_state_dict brings "
                      "back last_epoch but not the groups' lr, so the first step after the resume runs at "
                      "the warmup's lr. Build model, optimizer and scheduler first, then load the states")
    if not torch.equal(got["torch"], expected["torch"]):
        missed.append(_rng_cause(got["torch"], saved_rng))
    if got["python"] != expected["python"]:
        missed.append("Python's RNG state is not restored, so the augmentation differs: "
                      "random.setstate(checkpoint[\"rng\"][\"python\"])")
    if step != n:
        missed.append(f"resume returned step {step}, but the checkpoint was written after {n} steps: return "
                      "checkpoint[\"step\"], the steps done (the loop continues from there)")
    if not model.training:
        missed.append("the model is in eval mode (dropout off): a resumed run trains, leave it in train mode")
    return missed


def _close(a, b):
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-12) for x, y in zip(a, b))


def _rng_cause(got, saved):
    """Why torch's RNG after the resume is not the checkpoint's."""
    torch.set_rng_state(saved)
    ref.build_model()
    if torch.equal(got, torch.get_rng_state()):
        return ("torch's RNG was restored before the model was built, and building the model drew its "
                "initial weights from it: restore the RNG states last")
    return ("torch's RNG state is not restored, so the batches and dropout masks after the resume differ: "
            "torch.set_rng_state(checkpoint[\"rng\"][\"torch\"])")


@contextlib.contextmanager
def _watch_torch_load():
    """Record the ``weights_only`` of every ``torch.load`` call (None: torch's default, True)."""
    calls, load = [], torch.load

    def watched(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return load(*args, **kwargs)

    torch.load = watched
    try:
        yield calls
    finally:
        torch.load = load


def _call_resume(candidate, path, name):
    with case(name), _watch_torch_load() as calls:
        try:
            answer = candidate(path, ref.build_model, ref.build_optimizer, ref.build_scheduler)
        except KeyError as error:
            if "initial_lr" not in str(error):
                raise
        else:
            if False in calls:
                raise Mismatch(name, "torch.load(path, weights_only=True)", "weights_only=False",
                               cause="weights_only=False unpickles whatever the file holds, which can run "
                                     "arbitrary code; a checkpoint of state dicts loads with "
                                     "weights_only=True")
            return answer
    raise Mismatch(name, cause="KeyError 'initial_lr': a scheduler built with last_epoch ≥ 0 needs "
                   "'initial_lr' in every param group, which only optimizer.load_state_dict brings. Build "
                   "it with build_scheduler(optimizer) and load its state with scheduler.load_state_dict")


def _first_difference(expected, got):
    """Index of the first (loss, lrs) pair that differs, bit for bit; None if all agree."""
    for k in range(max(len(expected[0]), len(got[0]))):
        pair = [(run[0][k], run[1][k]) if k < len(run[0]) else None for run in (expected, got)]
        if pair[0] != pair[1]:
            return k
    return None


def _shown(run, k):
    if k >= len(run[0]):
        return "no step (the run ended)"
    return f"loss {run[0][k]!r}, lrs {format_lrs(run[1][k])}"


@exercise("09.2", "Resume exactly", reference=ref.resume, library=[ref.load], hints=[
    "Read the file with torch.load(path, weights_only=True). Then the order matters: build model, "
    "optimizer and scheduler with the three builders exactly as at the start, and only then load the "
    "three states. What does building a scheduler do to the groups' lr?",
    "After the three load_state_dict calls, restore torch's and Python's RNG states from "
    "checkpoint[\"rng\"] (torch.set_rng_state, random.setstate), last: building the model draws "
    "random numbers. Return checkpoint[\"step\"] with the three objects.",
    "checkpoint = torch.load(path, weights_only=True); model = build_model(); optimizer = "
    "build_optimizer(model); scheduler = build_scheduler(optimizer); then model/optimizer/scheduler"
    ".load_state_dict(checkpoint[…]); torch.set_rng_state(…); random.setstate(…); "
    "return model, optimizer, scheduler, checkpoint[\"step\"]",
])
def check_resume(candidate):
    for name, seed, n in _RESUME_HIDDEN if hidden_pass() else _RESUME_CASES:
        _seed(seed)
        run = _build()
        ref.run_steps(*run, n)
        expected = _snapshot(*run)
        second = ref.run_steps(*run, n)
        final = copy.deepcopy(run[0].state_dict())

        _seed(seed)
        run = _build()
        ref.run_steps(*run, n)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "checkpoint.pt")
            ref.save_checkpoint(path, n, *run)
            _seed(_SCRAMBLE)
            answer = _call_resume(candidate, path, name)
        model, optimizer, scheduler, step = _unpack(name, answer)
        got = _snapshot(model, optimizer, scheduler)
        resumed = ref.run_steps(model, optimizer, scheduler, max(2 * n - step, 0))
        k = _first_difference(second, resumed)
        if k is not None:
            missed = _missed(expected, got, (model, optimizer, scheduler), step, n, expected["torch"])
            raise Mismatch(name, _shown(second, k), _shown(resumed, k), step=n + k + 1,
                           detail=f"the first step after the resume that differs from the uninterrupted run "
                                  f"(step 1 is the first update; the resume comes after step {n})",
                           cause="; ".join(missed) or "the states after your resume look right, but the run "
                                 "differs: do you return the objects you loaded the states into?")
        where = _difference(final, model.state_dict(), "the final weights")
        if where:
            raise Mismatch(name, detail=where, cause="the losses agree but the final weights differ")
    return (f"{len(_RESUME_CASES)} resumes (in the warmup and after it): every loss, every lr and the final "
            "weights bit for bit equal to the uninterrupted run's")


# --------------------------------------------------------------------------
# 09.3 — a resumable loop over a shuffling DataLoader
# --------------------------------------------------------------------------


def _loop_variant(generator_state, skips_done, counted=1, reseed=False, resets=True):
    """``ref.train_resumable`` with its DataLoader resume written wrongly: ``generator_state`` is
    the loader generator's state it saves ("epoch start", right; "now", at the checkpoint; None);
    ``skips_done``: whether a resumed epoch skips the batches done before the interruption;
    ``counted``: the batches done it saves are ``batch + counted``; ``resets``: whether the later
    epochs start from their first batch again. ``reseed``: the right loop of
    another design, which re-seeds the generator with the epoch number at every epoch's start."""

    def train(path, total_steps, stop_after=None):
        torch.manual_seed(0)
        model, optimizer, scheduler = _build()
        generator = torch.Generator().manual_seed(0)
        loader = ref.make_loader(generator)
        step, done = 0, 0
        if os.path.exists(path):
            checkpoint = torch.load(path, weights_only=True)
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            torch.set_rng_state(checkpoint["rng"])
            if generator_state:
                generator.set_state(checkpoint["loader"])
            step, done = checkpoint["step"], checkpoint["done"] if skips_done else 0
        losses = []
        while step < total_steps:
            if reseed:
                generator.manual_seed(step // len(loader))
            epoch_start = generator.get_state()
            for batch, (x, y) in enumerate(loader):
                if batch < done:
                    continue
                losses.append(training.training_step(model, optimizer, x, y))
                scheduler.step()
                step += 1
                if step == stop_after:
                    loader_state = epoch_start if generator_state == "epoch start" else generator.get_state()
                    torch.save({"step": step, "done": batch + counted, "model": model.state_dict(),
                                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                "rng": torch.get_rng_state(), "loader": loader_state}, path)
                    return model, losses
                if step == total_steps:
                    break
            done = 0 if resets else done
        return model, losses

    return train


_NO_GENERATOR = ("the DataLoader's generator is not restored: the resumed run draws the shuffle of a "
                 "freshly seeded generator, so it trains on other batches than the uninterrupted run. Save "
                 "its state and set it back on the loader's own generator (generator.set_state) before "
                 "the resumed epoch iterates the loader")
_RESTARTS_EPOCH = ("a resumed epoch starts again from its first batch, so the batches before the "
                   "interruption are trained on twice: skip the batches already done in this epoch "
                   "(save how many with the checkpoint)")
LOOP_MISTAKES = {
    "both bugs are still there: " + _NO_GENERATOR + "; and " + _RESTARTS_EPOCH:
        _loop_variant(None, False),
    _NO_GENERATOR: _loop_variant(None, True),
    _RESTARTS_EPOCH: _loop_variant("epoch start", False),
    "you save the generator's state at the checkpoint, after this epoch's shuffle was drawn from it: "
    "restoring that state draws a new shuffle. Save generator.get_state() from the start of the epoch, "
    "before `for … in loader`, and skip the batches done":
        _loop_variant("now", True),
    "you save the generator's state at the checkpoint, after this epoch's shuffle was drawn, and a resumed "
    "epoch starts again from its first batch: save the state from the start of the epoch, and skip the "
    "batches done": _loop_variant("now", False),
    "a resumed epoch skips one batch too few, so the batch of the step before the interruption is "
    "trained on twice: enumerate counts from 0, so after batch number `batch` there are batch + 1 done":
        _loop_variant("epoch start", True, counted=0),
    "the epochs after the resumed one skip its done batches too: after the resumed epoch, set the number "
    "of batches done back to 0": _loop_variant("epoch start", True, resets=False),
}
_RESEEDED = _loop_variant("epoch start", True, reseed=True)  # right: the other design of the notebook
TOTAL = 15  # 3 epochs of 5 batches
_LOOP_CASES = (("interrupted after step 7 (in the middle of the second epoch)", (7,)),
               ("interrupted after step 10 (at the end of the second epoch)", (10,)),
               ("interrupted after step 2 (in the warmup)", (2,)),
               ("interrupted twice in one epoch, after steps 6 and 8", (6, 8)))
TOTAL_HIDDEN = 13  # issue 15, grading: a run that ends inside an epoch, interrupted elsewhere
_LOOP_HIDDEN = (("hidden: 13 steps, interrupted after step 4", (4,)),
                ("hidden: 13 steps, interrupted after steps 3 and 11", (3, 11)),
                ("hidden: 13 steps, interrupted after step 12", (12,)))


def _interrupted(train, stops, directory, name=None, total=TOTAL):
    """The losses of ``train`` interrupted after each of ``stops`` and resumed: (model, losses)."""
    path = os.path.join(directory, "checkpoint.pt")
    losses = []
    for stop in (*stops, None):
        with case(name):
            answer = train(path, total) if stop is None else train(path, total, stop_after=stop)
        model, part = _model_and_losses(name, answer)
        if stop is not None and name is not None and not os.path.exists(path):
            raise Mismatch(name, "a checkpoint at path", "no file", detail=f"after stop_after={stop}",
                           cause="when step == stop_after, save the checkpoint to path before returning")
        losses += part
    return model, losses


def _model_and_losses(name, answer):
    if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], nn.Module)
            and isinstance(answer[1], list)):
        raise Mismatch(name, "(model, losses)", answer, cause="return model, losses, like train_broken")
    return answer


@exercise("09.3", "Fix the resumable loop", reference=ref.train_resumable, library=[ref.save, ref.load],
          hints=[
    "The losses differ from the first step after the resume on. Two things about the data differ "
    "there: the order of the epoch's batches, and the batch the resumed epoch starts at. The loader "
    "of the numbers 0–11 above shows when a DataLoader draws an epoch's order from its generator.",
    "The shuffle is drawn when the epoch starts (`for … in loader`). So keep "
    "`epoch_start = generator.get_state()` right before that loop and save it (not the state at "
    "the checkpoint), with the number of batches done in the epoch; on resume, set the generator "
    "to it and skip that many batches.",
    "Before the while loop: `done = 0`; on resume `generator.set_state(checkpoint[\"rng\"][\"loader\"])` "
    "and `done = checkpoint[\"batches_done\"]`. In the while loop: `epoch_start = generator.get_state()`; "
    "`for batch, (x, y) in enumerate(loader): if batch < done: continue`; save "
    "`\"batches_done\": batch + 1` and `\"loader\": epoch_start`; after the for loop `done = 0`.",
])
def check_train_resumable(candidate):
    total, cases = (TOTAL_HIDDEN, _LOOP_HIDDEN) if hidden_pass() else (TOTAL, _LOOP_CASES)
    with tempfile.TemporaryDirectory() as directory:
        designs = [ref.train_resumable(os.path.join(directory, "a.pt"), total),
                   _RESEEDED(os.path.join(directory, "b.pt"), total)]
        name = f"uninterrupted, {total} steps"
        with case(name):
            answer = candidate(os.path.join(directory, "c.pt"), total)
    expected_model, expected = _model_and_losses(name, answer)
    if expected not in [losses for _, losses in designs]:
        reference = designs[0][1]
        k = next((k for k, (e, g) in enumerate(zip(reference, expected)) if e != g),
                 min(len(reference), len(expected)))
        raise Mismatch(name, _loss(reference, k), _loss(expected, k), step=k + 1,
                       detail=f"the loss of step {k + 1} of the run without interruption, expected as in "
                              f"train_broken ({len(reference)} losses in all, got {len(expected)})",
                       cause="the run itself changed: fix the checkpoint and the resume, and keep the seeds, "
                             "the model, optimizer, scheduler and loader as train_broken builds them (or "
                             "re-seed the loader's generator with the epoch number, 0, 1, 2, …, at the start "
                             "of every epoch)")
    passed = []  # the interruptions of the cases so far
    for name, stops in cases:
        with tempfile.TemporaryDirectory() as directory:
            model, got = _interrupted(candidate, stops, directory, name, total)
        if got != expected:
            k = next((k for k, (e, g) in enumerate(zip(expected, got)) if e != g),
                     min(len(expected), len(got)))
            cause = next((c for c, wrong in LOOP_MISTAKES.items()
                          if _replays(wrong, stops, got, total)
                          and all(_replays(wrong, earlier, expected, total) for earlier in passed)),
                         None)
            raise Mismatch(name, _loss(expected, k), _loss(got, k), step=k + 1,
                           detail=f"{len(got)} losses in all, expected {len(expected)}; the first to differ "
                                  f"is the loss of step {k + 1} (step 1 is the first update)",
                           cause=cause)
        where = _difference(expected_model.state_dict(), model.state_dict(), "the final weights")
        if where:
            raise Mismatch(name, detail=where, cause="the losses agree, but the final weights differ: "
                           "return the model you trained")
        passed.append(stops)
    return (f"{len(_LOOP_CASES)} interruptions (mid-epoch, at an epoch's end, in the warmup, twice in one "
            f"epoch) of a {TOTAL}-step run: every loss and the final weights bit for bit equal to the "
            "uninterrupted run's")


def _replays(wrong, stops, got, total):
    with tempfile.TemporaryDirectory() as directory:
        return _interrupted(wrong, stops, directory, total=total)[1] == got


def _loss(losses, k):
    return losses[k] if k < len(losses) else "no step (the run ended)"


# --------------------------------------------------------------------------
# 09.4 — a new base lr for a resumed run
# --------------------------------------------------------------------------


class _LrCase:
    """A scheduler stepped to ``at``, whose base lrs then change from ``lrs`` to ``new``."""

    def __init__(self, name, make, lrs, new, at, optimizer="SGD"):
        self.name, self.make, self.lrs, self.new = name, make, lrs, new
        self.at, self.optimizer = at, optimizer

    @property
    def label(self):
        return f"{self.name}, group lrs {list(self.lrs)} → base lrs {list(self.new)} after step {self.at}"

    def optimizer_with(self, lrs):
        groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
        return getattr(torch.optim, self.optimizer)(groups)


_AFTER = 6  # steps compared after the change


def _lr_record(case_, set_base_lrs, lrs=None):
    """The lrs at steps at, at+1, …, at+_AFTER-1 after ``set_base_lrs`` at step ``at``, then the lrs a
    scheduler rebuilt with last_epoch= on the optimizer's state dict gives. The run starts from the
    case's lrs, or from ``lrs``."""
    optimizer = case_.optimizer_with(lrs or case_.lrs)
    scheduler = case_.make(optimizer)
    for _ in range(case_.at):
        optimizer.step()
        scheduler.step()
    base_lrs = list(case_.new)
    with case(case_.label):
        set_base_lrs(optimizer, scheduler, base_lrs)
    if base_lrs != list(case_.new):
        raise Mismatch(case_.label, list(case_.new), base_lrs, detail="the list base_lrs you were given",
                       cause="set_base_lrs changed the caller's list: copy it (list(base_lrs))")
    rows = []
    for _ in range(_AFTER):
        rows.append(_lrs(optimizer))
        optimizer.step()
        scheduler.step()
    rebuilt = case_.optimizer_with(case_.lrs)
    rebuilt.load_state_dict(optimizer.state_dict())
    case_.make(rebuilt, last_epoch=scheduler.last_epoch - 1)
    return rows, _lrs(rebuilt)


def _unchanged(optimizer, scheduler, base_lrs):
    pass


def _only_group_lr(optimizer, scheduler, base_lrs):
    for group, old, new in zip(optimizer.param_groups, scheduler.base_lrs, base_lrs):
        group["lr"] *= new / old


def _only_base_lrs(optimizer, scheduler, base_lrs):
    scheduler.base_lrs = list(base_lrs)
    for group, new in zip(optimizer.param_groups, base_lrs):
        group["initial_lr"] = new


def _peak_lr(optimizer, scheduler, base_lrs):
    for group, new in zip(optimizer.param_groups, base_lrs):
        group["lr"] = group["initial_lr"] = new
    scheduler.base_lrs = list(base_lrs)


def _no_initial_lr(optimizer, scheduler, base_lrs):
    _only_group_lr(optimizer, scheduler, base_lrs)
    scheduler.base_lrs = list(base_lrs)


def _first_group_only(optimizer, scheduler, base_lrs):
    group, old, new = optimizer.param_groups[0], scheduler.base_lrs[0], base_lrs[0]
    group["lr"] *= new / old
    group["initial_lr"] = scheduler.base_lrs[0] = new


BASE_LR_MISTAKES = {
    "you changed only group[\"lr\"]: the next scheduler.step() computes the lr from scheduler.base_lrs "
    "again and undoes it; set scheduler.base_lrs too": _only_group_lr,
    "the lr of the current step is still the old one: the scheduler writes the new base lrs into the "
    "groups only at its next step(); scale group[\"lr\"] by new / old base lr too": _only_base_lrs,
    "the current lr must be the schedule's value at this step with the new base lr (group[\"lr\"] · "
    "new / old), not the new base lr itself": _peak_lr,
    "group[\"initial_lr\"] still holds the old base lr: a scheduler built later on this optimizer (a "
    "resume with last_epoch=…) starts from it. Set it to the new base lr too": _no_initial_lr,
    "only the first param group changed: update every group, each with its own new base lr":
        _first_group_only,
}


def _warmup_cosine(optimizer, last_epoch=-1):
    return S.LambdaLR(optimizer, ref.warmup_cosine(), last_epoch=last_epoch)


def _step_lr(optimizer, last_epoch=-1):
    return S.StepLR(optimizer, step_size=3, gamma=0.5, last_epoch=last_epoch)


_LR_CASES = (
    _LrCase("LambdaLR warmup + cosine (4, 16), Adam", _warmup_cosine, (0.01, 0.03), (0.002, 0.012), 7,
            "Adam"),
    _LrCase("LambdaLR warmup + cosine (4, 16), in the warmup", _warmup_cosine, (0.1, 0.02), (0.05, 0.05), 2),
    _LrCase("StepLR(step_size=3, gamma=0.5)", _step_lr, (0.1, 0.02), (0.03, 0.01), 4),
)
_LR_HIDDEN = (  # issue 15, grading: three groups, other lrs and steps
    _LrCase("hidden: StepLR(step_size=3, gamma=0.5), 3 groups", _step_lr, (0.2, 0.05, 0.01),
            (0.1, 0.1, 0.004), 5),
    _LrCase("hidden: LambdaLR warmup + cosine (4, 16), 3 groups, Adam", _warmup_cosine, (0.004, 0.02, 0.3),
            (0.008, 0.01, 0.1), 10, "Adam"),
)


def _same_record(a, b):
    (rows_a, rebuilt_a), (rows_b, rebuilt_b) = a, b
    return len(rows_a) == len(rows_b) and all(map(_close_enough, rows_a, rows_b)) and _close_enough(
        rebuilt_a, rebuilt_b)


def _close_enough(a, b):
    return len(a) == len(b) and all(
        isinstance(y, float) and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15) for x, y in zip(a, b))


@exercise("09.4", "A new base lr for a resumed run", reference=ref.set_base_lrs, hints=[
    "Three places hold the lr: group[\"lr\"] (what the next optimizer.step() uses), scheduler.base_lrs "
    "(what a closed-form scheduler computes every later lr from) and group[\"initial_lr\"] (what a "
    "scheduler built later on this optimizer starts from). All three must move, in every group.",
    "The schedule's factor at this step is group[\"lr\"] / old base lr, so the current lr becomes "
    "group[\"lr\"] · new / old. Then base_lrs and initial_lr become the new base lrs.",
    "for group, old, new in zip(optimizer.param_groups, scheduler.base_lrs, base_lrs): "
    "group[\"lr\"] = group[\"lr\"] * new / old; group[\"initial_lr\"] = new. Then "
    "scheduler.base_lrs = list(base_lrs).",
])
def check_set_base_lrs(candidate):
    cases = _LR_HIDDEN if hidden_pass() else _LR_CASES
    for i, case_ in enumerate(cases):
        expected = _lr_record(case_, _unchanged, lrs=case_.new)  # as if started from the new lrs
        got = _lr_record(case_, candidate)
        if _same_record(expected, got):
            continue
        cause = next((c for c, wrong in BASE_LR_MISTAKES.items()
                      if _same_record(_lr_record(case_, wrong), got)
                      and all(_same_record(_lr_record(c_, wrong), _lr_record(c_, _unchanged, lrs=c_.new))
                              for c_ in cases[:i])), None)
        (rows_e, rebuilt_e), (rows_g, rebuilt_g) = expected, got
        k = next((k for k, (e, g) in enumerate(zip(rows_e, rows_g)) if not _close_enough(e, g)), None)
        if k is None:
            raise Mismatch(case_.label, format_lrs(rebuilt_e), format_lrs(rebuilt_g),
                           detail=f"the lrs of a scheduler rebuilt with last_epoch={case_.at + _AFTER - 1} "
                                  "on the optimizer's state dict", cause=cause)
        raise Mismatch(case_.label, format_lrs(rows_e[k]), format_lrs(rows_g[k]), step=case_.at + k + 1,
                       detail=f"the groups' lrs for step {case_.at + k + 1} (step 1 is the first update)"
                              + (", right after set_base_lrs" if k == 0 else ""),
                       cause=cause)
    return (f"{len(_LR_CASES)} cases (LambdaLR warmup + cosine in and after the warmup, StepLR): the lrs "
            f"now, the next {_AFTER} steps and a scheduler rebuilt later follow the schedule with the new "
            "base lrs")
