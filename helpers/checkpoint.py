"""Checkpoints that resume a training run bit for bit (notebook 09).

A checkpoint is one file written by ``torch.save`` that holds state dicts and
random-number-generator states only, so ``torch.load(path, weights_only=True)``
reads it back::

    {"step": 8,                                # optimizer steps done
     "model": model.state_dict(),
     "optimizer": optimizer.state_dict(),
     "scheduler": scheduler.state_dict(),     # if the run has one
     "rng": {"torch": torch.get_rng_state(),   # a uint8 tensor
             "python": random.getstate(),      # a tuple of ints
             "loader": generator.get_state()}, # a DataLoader's generator, if given
     "extra": {...}}                           # anything else the run needs, if given

:func:`save` and :func:`load` write and read it for any run::

    save(path, model=model, optimizer=optimizer, scheduler=scheduler, step=step)
    ...                                        # a new process: build everything as at the start, then
    step, extra = load(path, model=model, optimizer=optimizer, scheduler=scheduler)

To resume: build model, optimizer and scheduler with the code that built them
at the start, *then* load each state, then the RNG states (:func:`load` does the
last two). The run used by the notebook and its checks (``build_model``,
``build_optimizer``, ``build_scheduler``, ``run_steps``) draws its batches and
dropout masks from torch's global generator and an augmentation factor from
Python's ``random``, so a resume is exact only if both are restored too. It
computes in float64, so that its printed digits are the same on every CPU.
"""

import math
import os
import random
import tempfile

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, TensorDataset

from . import training

WARMUP_STEPS, TOTAL_STEPS = 4, 16  # the schedule of the run
BODY_LR, HEAD_LR = 0.01, 0.03  # the base lrs of its two param groups
# the targets are y = x @ _TEACHER.T
_TEACHER = torch.randn(2, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)


# --------------------------------------------------------------------------
# Any run: save and load (model, optimizer, scheduler, step, RNG states)
# --------------------------------------------------------------------------


def save(path, *, model, optimizer, scheduler=None, step=0, generator=None, extra=None):
    """Write the checkpoint of a run to ``path``, atomically, without changing the run.

    Saves the three state dicts (the scheduler's if there is one), ``step``, the
    states of torch's global generator and of Python's ``random``, and, if given,
    ``generator``: a DataLoader's ``torch.Generator``, or the state it had when the
    current epoch began (``generator.get_state()`` before ``for … in loader``), which
    a resume in the middle of an epoch needs, since the loader draws an epoch's
    order from its generator when the epoch starts. ``extra``: anything else the run
    needs to continue (e.g. how many batches of the epoch are done), made of
    tensors, numbers, strings and containers of them.

    The file is written next to ``path`` and then renamed to it, so an interruption
    while saving leaves the previous checkpoint intact.
    """
    rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if generator is not None:
        rng["loader"] = generator.get_state() if isinstance(generator, torch.Generator) else generator
    checkpoint = {"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    if scheduler is not None:
        checkpoint["scheduler"] = scheduler.state_dict()
    checkpoint["rng"] = rng
    if extra is not None:
        checkpoint["extra"] = extra
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".checkpoint-")
    try:
        with os.fdopen(descriptor, "wb") as file:
            torch.save(checkpoint, file)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):  # torch.save failed: leave no half-written file behind
            os.remove(temporary)


def load(path, *, model, optimizer, scheduler=None, generator=None):
    """Restore the run saved by :func:`save` at ``path``; returns ``(step, extra)``.

    ``model``, ``optimizer`` and ``scheduler`` must be built as at the start of the
    run (same code, same param groups in the same order), the scheduler *before*
    this call: building a scheduler writes the lr of step 1 (the first update) into every param group,
    and only ``optimizer.load_state_dict`` brings back the checkpoint's. Reads the
    file with ``weights_only=True``; restores the RNG states last (and
    ``generator``'s, if given), after everything that draws random numbers.
    """
    checkpoint = torch.load(path, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    random.setstate(checkpoint["rng"]["python"])
    if generator is not None:
        generator.set_state(checkpoint["rng"]["loader"])
    return checkpoint["step"], checkpoint.get("extra")


# --------------------------------------------------------------------------
# The run: a small network, Adam with two param groups, warmup + cosine
# --------------------------------------------------------------------------


def warmup_cosine(warmup_steps=WARMUP_STEPS, total_steps=TOTAL_STEPS):
    """The lr factor of step t, for ``LambdaLR``: linear warmup, then a cosine down to 0.

    ``(t + 1)/(W + 1)`` for t < W (notebook 07's warmup), then
    ``(1 + cos(π (t − W)/(T − W)))/2`` up to step T, then 0.
    """

    def factor(t):
        if t < warmup_steps:
            return (t + 1) / (warmup_steps + 1)
        progress = min(t - warmup_steps, total_steps - warmup_steps) / (total_steps - warmup_steps)
        return (1 + math.cos(math.pi * progress)) / 2

    return factor


def build_model():
    """A 5 → 16 → 2 network with dropout, in float64. Like any model, it draws its initial
    weights from torch's global generator."""
    # Built in float64 rather than converted: torch draws float32 random numbers with other kernels
    # on other CPUs, float64 ones alike everywhere.
    return nn.Sequential(nn.Linear(5, 16, dtype=torch.float64), nn.Tanh(), nn.Dropout(0.1),
                         nn.Linear(16, 2, dtype=torch.float64))


def build_optimizer(model):
    """Adam with two param groups: the first layer at ``BODY_LR``, the last at ``HEAD_LR``."""
    return torch.optim.Adam([
        {"params": model[0].parameters(), "lr": BODY_LR},
        {"params": model[3].parameters(), "lr": HEAD_LR},
    ])


def build_scheduler(optimizer):
    """``LambdaLR`` with :func:`warmup_cosine`: 4 warmup steps, down to 0 at step 16."""
    return LambdaLR(optimizer, warmup_cosine())


def random_batch(size=8):
    """A fresh batch ``(x, y)``: x from torch's global generator, scaled by a factor from
    Python's ``random`` (a random-brightness style augmentation), ``y = x @ W.T``."""
    x = torch.randn(size, 5, dtype=torch.float64) * random.uniform(0.5, 1.5)
    return x, x @ _TEACHER.T


def run_steps(model, optimizer, scheduler, steps):
    """``steps`` training steps on random batches. Returns ``(losses, lrs)``: the loss of
    every step (floats) and the lr of every param group it trained with."""
    losses, lrs = [], []
    for _ in range(steps):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        losses.append(training.training_step(model, optimizer, *random_batch()))
        scheduler.step()
    return losses, lrs


# --------------------------------------------------------------------------
# Save and resume (exercises 09.1 and 09.2)
# --------------------------------------------------------------------------


def save_checkpoint(path, step, model, optimizer, scheduler):
    """Write the checkpoint of a run after ``step`` optimizer steps to ``path``.

    State dicts, not the objects, so that ``torch.load(path, weights_only=True)``
    can read it; the RNG states, so that the batches and dropout masks after a
    resume are the ones the run would have drawn. (:func:`save`.)
    """
    save(path, model=model, optimizer=optimizer, scheduler=scheduler, step=step)


def resume(path, build_model, build_optimizer, build_scheduler):
    """Rebuild a run from the checkpoint at ``path``: ``(model, optimizer, scheduler, step)``.

    The builders are the run's own construction code: ``build_model()``,
    ``build_optimizer(model)``, ``build_scheduler(optimizer)``. All three are built
    first: building a scheduler writes the lr of step 1 (the first update) into every param group, so it
    must happen *before* ``optimizer.load_state_dict`` brings back the lrs of the
    checkpoint. The RNG states come last, after everything that draws random numbers
    (:func:`load`).
    """
    model = build_model()
    optimizer = build_optimizer(model)
    scheduler = build_scheduler(optimizer)
    step, _ = load(path, model=model, optimizer=optimizer, scheduler=scheduler)
    return model, optimizer, scheduler, step


# --------------------------------------------------------------------------
# Changing the lr of a resumed run (exercise 09.4)
# --------------------------------------------------------------------------


def set_base_lrs(optimizer, scheduler, base_lrs):
    """From now on, follow the schedule as if the run had started from ``base_lrs``.

    For a scheduler whose lrs are proportional to its base lrs (``LambdaLR``,
    ``StepLR``, ``ExponentialLR``, …): group i's lr is multiplied by
    ``base_lrs[i] / old base lr`` now, and the scheduler's ``base_lrs`` and the
    group's ``initial_lr`` (where every scheduler built later on this optimizer
    starts from) become ``base_lrs[i]``.
    """
    for group, old, new in zip(optimizer.param_groups, scheduler.base_lrs, base_lrs, strict=True):
        group["lr"] = group["lr"] * new / old
        group["initial_lr"] = new
    scheduler.base_lrs = list(base_lrs)


# --------------------------------------------------------------------------
# A resumable loop over a shuffling DataLoader (exercise 09.3)
# --------------------------------------------------------------------------

def _regression_data(n=40, seed=0):
    """``n`` samples ``(x, y)`` in float64, ``y = x @ W.T + b`` plus noise of standard deviation 0.1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    weight, bias = (torch.randn(2, 5, generator=g, dtype=torch.float64),
                    torch.randn(2, generator=g, dtype=torch.float64))
    return x, x @ weight.T + bias + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)


DATASET = TensorDataset(*_regression_data())  # 5 batches of 8 per epoch


def make_loader(generator):
    """A DataLoader over ``DATASET`` that reshuffles every epoch, drawing from ``generator``."""
    return DataLoader(DATASET, batch_size=8, shuffle=True, generator=generator)


def train_resumable(path, total_steps, stop_after=None):
    """Train for ``total_steps`` steps over shuffled mini-batches; resume from ``path`` if it exists.

    With ``stop_after``, the run stops after that step (as if interrupted), having
    written its checkpoint to ``path``. Returns ``(model, losses)``: the model and the
    loss of every step this call ran. An interrupted run plus its resumed run give
    the uninterrupted run's losses and weights, bit for bit.

    The DataLoader draws each epoch's shuffle from its generator when the epoch
    starts, so the checkpoint keeps the generator's state *from the start of the
    epoch* and how many of its batches are done: the resumed run replays the same
    shuffle and skips those batches.
    """
    torch.manual_seed(0)
    model = build_model()
    optimizer = build_optimizer(model)
    scheduler = build_scheduler(optimizer)
    generator = torch.Generator().manual_seed(0)
    loader = make_loader(generator)
    step, done = 0, 0  # steps done in all; batches done in the current epoch
    if os.path.exists(path):
        step, extra = load(path, model=model, optimizer=optimizer, scheduler=scheduler, generator=generator)
        done = extra["batches_done"]
    losses = []
    while step < total_steps:
        epoch_start = generator.get_state()  # this epoch's shuffle is drawn from here
        for batch, (x, y) in enumerate(loader):
            if batch < done:  # trained on before the interruption
                continue
            losses.append(training.training_step(model, optimizer, x, y))
            scheduler.step()
            step += 1
            if step == stop_after:
                save(path, model=model, optimizer=optimizer, scheduler=scheduler, step=step,
                     generator=epoch_start, extra={"batches_done": batch + 1})
                return model, losses
            if step == total_steps:
                break
        done = 0
    return model, losses
