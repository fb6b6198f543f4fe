"""Training recipes, written out: the reference solutions of notebook 10.

    warmup_cosine_lr     the lr of optimizer step t under linear warmup + cosine, in closed form,
                         in either warmup convention (from 0, or from lr/(W + 1))
    train_accumulated    k micro-batches per optimizer step, the same update as one big batch
    EMA                  an exponential moving average of a model's weights, as
                         torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d))
    amp_train_step       one mixed-precision step with a GradScaler: unscale, clip, step, and the
                         scheduler stepped only when the optimizer was

Each is tested against torch's own pieces (``tests/test_recipes.py``).
"""

import copy
import math

import torch
from torch import nn

__all__ = ["EMA", "amp_train_step", "train_accumulated", "warmup_cosine_lr"]


def warmup_cosine_lr(step, base_lr, warmup_steps, total_steps, min_lr=0.0, *, from_zero=False):
    r"""The lr that optimizer step ``step`` trains with (step 0 is the first batch).

    With W warmup steps and T steps in all::

        warmup, t < W:    base_lr · (t + 1)/(W + 1)     torch's LinearLR(start_factor=1/(W+1), total_iters=W)
                          base_lr · t/W                 from_zero: LambdaLR(t/W), Hugging Face's convention
        cosine, t ≥ W:    min_lr + (base_lr − min_lr) · (1 + cos(π (t − W)/(T − W)))/2

    which is what ``SequentialLR([LinearLR(…), CosineAnnealingLR(T_max=T − W, eta_min=min_lr)],
    milestones=[W])`` (resp. the LambdaLR) gives, stepped once per batch, for t = 0 … T.
    """
    t, W, T = step, warmup_steps, total_steps
    if t < W:
        return base_lr * (t / W if from_zero else (t + 1) / (W + 1))
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * (t - W) / (T - W))) / 2


def train_accumulated(model, loss_fn, optimizer, scheduler, micro_batches, accumulation_steps):
    """Train on ``micro_batches`` [(x, y), …], one optimizer step per ``accumulation_steps`` of them.

    Each group of micro-batches (the last may hold fewer, and micro-batches may differ in size)
    gives the update of one big batch of all its samples: each micro-batch's mean loss is weighted
    by its share of the group's samples, n_micro / n_group, so that the accumulated gradient is
    the gradient of the mean loss over the group. ``zero_grad`` once per group, the scheduler
    stepped once per optimizer step. Returns the loss of each optimizer step (the group's mean),
    as floats.
    """
    losses = []
    for start in range(0, len(micro_batches), accumulation_steps):
        group = micro_batches[start:start + accumulation_steps]
        n_group = sum(len(y) for _, y in group)
        optimizer.zero_grad()
        total = 0.0
        for x, y in group:
            loss = loss_fn(model(x), y) * (len(y) / n_group)
            loss.backward()
            total += loss.item()
        optimizer.step()
        scheduler.step()
        losses.append(total)
    return losses


class EMA(nn.Module):
    r"""An exponential moving average of ``model``'s weights, kept in ``self.module`` (a copy).

    ``update_parameters(model)``, as torch's AveragedModel with ``get_ema_multi_avg_fn(decay)``::

        first update:   θ_ema ← θ                            (a copy; the average starts here)
        then:           θ_ema ← decay · θ_ema + (1 − decay) · θ

    over the parameters, and over the buffers too when ``use_buffers``; otherwise the buffers
    are copied from ``model`` at every update. ``n_averaged`` counts the updates.
    """

    def __init__(self, model, decay=0.999, use_buffers=False):
        super().__init__()
        self.module = copy.deepcopy(model)
        self.decay = decay
        self.use_buffers = use_buffers
        self.n_averaged = 0

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _averaged(self, model):
        mine, theirs = [*self.module.parameters()], [*model.parameters()]
        if self.use_buffers:
            mine, theirs = mine + [*self.module.buffers()], theirs + [*model.buffers()]
        return zip(mine, theirs)

    @torch.no_grad()
    def update_parameters(self, model):
        for mine, theirs in self._averaged(model):
            if self.n_averaged == 0:
                mine.copy_(theirs)
            elif mine.is_floating_point():
                mine.lerp_(theirs, 1 - self.decay)
            else:  # an integer buffer (num_batches_tracked), as torch: decay·a + (1 − decay)·b, truncated
                mine.copy_(mine * self.decay + theirs * (1 - self.decay))
        if not self.use_buffers:
            for mine, theirs in zip(self.module.buffers(), model.buffers()):
                mine.copy_(theirs)
        self.n_averaged += 1


def amp_train_step(model, loss_fn, x, y, optimizer, scaler, scheduler, max_norm):
    """One mixed-precision step: bf16 autocast forward, scaled backward, gradients unscaled and
    clipped to ``max_norm``, ``scaler.step``/``update``, and ``scheduler.step()`` only if the
    optimizer stepped (the scaler skips a step whose gradients are not finite, and lowers its scale).
    Returns True if the optimizer stepped."""
    optimizer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    stepped = scaler.get_scale() >= scale  # a skipped step is the only thing that lowers the scale
    if stepped:
        scheduler.step()
    return stepped
