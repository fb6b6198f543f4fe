"""The learning-rate range test (Smith 2017; fastai's ``lr_find``): which lr to train with.

Train for a few steps while the lr grows geometrically from ``start_lr`` to
``end_lr``, record the loss, stop when it blows up, then put the model and the
optimizer back as they were. Where the smoothed loss falls fastest is a good lr.

    step i = 0 … num_steps−1:   lr_i = start_lr · (end_lr/start_lr)^(i/(num_steps−1))
    smoothed loss:              a_i = β·a_{i−1} + (1−β)·L_i  (a_{−1} = 0),   s_i = a_i / (1 − β^(i+1))
    stop after step i if        s_i > diverge · min_{j≤i} s_j,  or L_i is not finite
"""

import copy
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RangeTestResult:
    """The record of a range test: one entry per step taken.

    ``lrs`` are group 0's learning rates, ``losses`` the raw losses L_i (the loss of
    step i's batch, before step i's update), ``smoothed`` the bias-corrected EMA s_i.
    """

    lrs: tuple
    losses: tuple
    smoothed: tuple

    def suggestion(self):
        """The lr where the smoothed loss falls fastest against log lr.

        The slope at step i is the central difference (s_{i+1} − s_{i−1}) /
        (ln lr_{i+1} − ln lr_{i−1}) (one-sided at the two ends, as ``numpy.gradient``),
        over the steps up to the first non-finite loss; the suggestion is the lr of the
        most negative slope. A common alternative is ``min_loss_lr / 10``.
        """
        n = next((i for i, s in enumerate(self.smoothed) if not math.isfinite(s)),
                 len(self.smoothed))
        if n < 2:
            raise ValueError(f"the range test took {n} finite step(s): a slope needs at least 2")
        x, s = [math.log(lr) for lr in self.lrs[:n]], self.smoothed[:n]

        def slope(i):
            lo, hi = max(i - 1, 0), min(i + 1, n - 1)
            return (s[hi] - s[lo]) / (x[hi] - x[lo])

        return self.lrs[min(range(n), key=slope)]

    @property
    def suggested_lr(self):
        """``suggestion()``: the lr of the steepest descent of the smoothed loss."""
        return self.suggestion()

    @property
    def min_loss_lr(self):
        """The lr where the smoothed loss is lowest (too high to train with: divide by ~10)."""
        finite = [i for i, s in enumerate(self.smoothed) if math.isfinite(s)]
        if not finite:
            raise ValueError("the range test recorded no finite loss")
        return self.lrs[min(finite, key=self.smoothed.__getitem__)]


def _forever(batches):
    """The batches again and again: a list or a DataLoader is iterated afresh each pass
    (a DataLoader reshuffles), a one-shot iterator is replayed from memory."""
    if isinstance(batches, Iterator):
        yield from itertools.cycle(batches)
        return
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            return


def _check(start_lr, end_lr, num_steps, smoothing, diverge, optimizer):
    if not 0.0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}")
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps must be an integer ≥ 2, got {num_steps!r}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if not diverge > 1.0:
        raise ValueError(f"diverge must be > 1 (a factor over the best loss), got {diverge}")
    if not optimizer.param_groups[0]["lr"] > 0.0:
        raise ValueError(
            "param group 0 needs an lr > 0: the other groups keep their ratio to it, "
            f"got {optimizer.param_groups[0]['lr']}"
        )


def lr_range_test(model, loss_fn, batches, optimizer, *, start_lr=1e-7, end_lr=10.0,
                  num_steps=100, smoothing=0.98, diverge=4.0):
    """Train with a geometrically growing lr; return the losses; leave everything as it was.

    At step i, group 0's lr is lr_i = start_lr · (end_lr/start_lr)^(i/(num_steps−1)) and
    every other group k gets lr_i · lr_k/lr_0, with lr_k its lr before the test, so the
    ratios between groups are kept. One step: ``loss_fn(model(x), y)`` on the next
    batch, ``backward()``, ``optimizer.step()``. The test stops after ``num_steps``
    steps, or early after a step whose smoothed loss exceeds ``diverge`` × the best so
    far or whose loss is not finite (that step is recorded, its update not made).
    The early stop assumes a positive loss.

    Afterwards the model's parameters, gradients and buffers and the optimizer's
    ``state_dict()`` (state and lrs) are restored exactly, even if a step raised; the
    global random number generator is not (dropout, shuffling advance it).

    Args:
        model (Module): the model to train.
        loss_fn (callable): ``(model(x), y) -> scalar loss tensor``.
        batches (iterable): (x, y) pairs, cycled if fewer than ``num_steps``.
        optimizer (Optimizer): optimizes ``model``'s parameters.
        start_lr, end_lr (float): the first and the last lr, 0 < start_lr < end_lr.
        num_steps (int): steps from start_lr to end_lr, ≥ 2. Default: 100.
        smoothing (float): β of the loss EMA, in [0, 1); 0 is no smoothing. Default: 0.98.
        diverge (float): stop when the smoothed loss exceeds this × its minimum, > 1.
            Default: 4.0.

    Returns:
        RangeTestResult: ``lrs``, ``losses``, ``smoothed``, ``suggestion()``, ``min_loss_lr``.
    """
    _check(start_lr, end_lr, num_steps, smoothing, diverge, optimizer)
    tensors = list(model.parameters()) + list(model.buffers())
    saved = [t.detach().clone() for t in tensors]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    optimizer_state = copy.deepcopy(optimizer.state_dict())  # state_dict() shares the tensors
    ratios = [group["lr"] / optimizer.param_groups[0]["lr"] for group in optimizer.param_groups]
    lrs, losses, smoothed = [], [], []
    try:
        stream, average, best = _forever(batches), 0.0, math.inf
        for i in range(num_steps):
            lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
            for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
                group["lr"] = lr * ratio
            batch = next(stream, None)
            if batch is None:
                raise ValueError("batches is empty")
            x, y = batch
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            raw = loss.item()
            average = smoothing * average + (1 - smoothing) * raw
            s = average / (1 - smoothing ** (i + 1))
            lrs.append(lr), losses.append(raw), smoothed.append(s)
            best = min(best, s)
            if not math.isfinite(s) or s > diverge * best:
                break
            loss.backward()
            optimizer.step()
    finally:
        with torch.no_grad():
            for t, value in zip(tensors, saved, strict=True):
                t.copy_(value)
        for p, grad in zip(model.parameters(), grads, strict=True):
            p.grad = grad
        optimizer.load_state_dict(optimizer_state)
    return RangeTestResult(tuple(lrs), tuple(losses), tuple(smoothed))

