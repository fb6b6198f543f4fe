"""Weight averaging, drop-in for ``torch.optim.swa_utils``.

    AveragedModel         a copy of a model whose weights are a running average of the model's
    SWALR                 anneal each group's lr to a constant ``swa_lr``, then hold it
    update_bn             recompute BatchNorm running statistics with one pass over data
    get_swa_avg_fn        SWA:  θ̄ ← θ̄ + (θ − θ̄)/(n+1)      (the mean of the n+1 models seen)
    get_ema_avg_fn        EMA:  θ̄ ← d·θ̄ + (1−d)·θ           (recent models weigh more)
    get_*_multi_avg_fn    the same rules in place on lists of tensors, written as θ̄.lerp_(θ, w)

n is the number of models averaged so far (``AveragedModel.n_averaged``), d the
decay. Same names, arguments, defaults, errors and numbers as torch 2.13 (bit for
bit on CPU; on CUDA torch's default average is a foreach lerp, equal up to rounding).
"""

import itertools
import math
from copy import deepcopy

import torch
from torch.nn import Module
from torch.nn.modules.batchnorm import _BatchNorm

from helpers.lr_scheduler.base import LRScheduler, per_group

__all__ = [
    "SWALR",
    "AveragedModel",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
    "update_bn",
]


def _check_decay(decay):
    if decay < 0.0 or decay > 1.0:
        raise ValueError(
            f"Invalid decay value {decay} provided. Please provide a value in [0,1] range."
        )


def get_ema_multi_avg_fn(decay=0.999):
    """EMA in place on lists of tensors:  θ̄ ← d·θ̄ + (1−d)·θ  =  θ̄.lerp_(θ, 1−d).

    Returns ``ema_update(averaged, current, num_averaged)``; ``decay`` must be in [0, 1].
    """
    _check_decay(decay)

    @torch.no_grad()
    def ema_update(averaged, current, num_averaged):
        for p_avg, p in zip(averaged, current, strict=True):
            if p_avg.is_floating_point() or p_avg.is_complex():
                p_avg.lerp_(p, 1 - decay)
            else:  # lerp has no integer kernel
                p_avg.copy_(p_avg * decay + p * (1 - decay))

    return ema_update


def get_swa_multi_avg_fn():
    """SWA in place on lists of tensors:  θ̄ ← θ̄ + (θ − θ̄)/(n+1)  =  θ̄.lerp_(θ, 1/(n+1)).

    Returns ``swa_update(averaged, current, num_averaged)``. Integer tensors take
    ``addcdiv_`` (a tensor n) or ``add_`` (an int n), as in torch: both refuse them.
    """

    @torch.no_grad()
    def swa_update(averaged, current, num_averaged):
        for p_avg, p in zip(averaged, current, strict=True):
            if p_avg.is_floating_point() or p_avg.is_complex():
                p_avg.lerp_(p, 1 / (num_averaged + 1))
            elif isinstance(num_averaged, torch.Tensor):
                p_avg.addcdiv_(p - p_avg, num_averaged + 1)
            else:
                p_avg.add_(p - p_avg, alpha=1.0 / (num_averaged + 1))

    return swa_update


def get_ema_avg_fn(decay=0.999):
    """EMA of one tensor:  θ̄ ← d·θ̄ + (1−d)·θ  (returns the new average).

    Returns ``ema_update(averaged, current, num_averaged)``; ``decay`` must be in [0, 1].
    """
    _check_decay(decay)

    @torch.no_grad()
    def ema_update(averaged, current, num_averaged):
        return decay * averaged + (1 - decay) * current

    return ema_update


def get_swa_avg_fn():
    """SWA of one tensor:  θ̄ ← θ̄ + (θ − θ̄)/(n+1)  (returns the new average)."""

    @torch.no_grad()
    def swa_update(averaged, current, num_averaged):
        return averaged + (current - averaged) / (num_averaged + 1)

    return swa_update


def _by_device_and_dtype(averaged, current):
    """Pairs of lists (averaged, current) with one device and dtype each, in first-seen order."""
    groups = {}
    for p_avg, p in zip(averaged, current, strict=True):
        pair = groups.setdefault((p_avg.device, p_avg.dtype), ([], []))
        pair[0].append(p_avg)
        pair[1].append(p)
    return groups.items()


class AveragedModel(Module):
    """A copy of ``model`` whose parameters average the models passed to ``update_parameters``.

    The first call copies the model (n = 0); each later call folds it into the average

        SWA (default):        θ̄ ← θ̄ + (θ − θ̄)/(n+1)
        EMA (get_ema_*):      θ̄ ← d·θ̄ + (1−d)·θ
        any other rule:       θ̄ ← avg_fn(θ̄, θ, n),  or  multi_avg_fn([θ̄…], [θ…], n) in place

    and n ← n + 1 (the buffer ``n_averaged``, saved in ``state_dict``). Buffers
    (BatchNorm statistics) are averaged too with ``use_buffers=True``; otherwise they
    are copied from the model, and ``update_bn`` recomputes them for the average.
    ``forward`` is the copy's forward.

    Args:
        model (Module): the model to average; it is deep-copied.
        device (torch.device, optional): where the copy lives.
        avg_fn (callable, optional): ``(θ̄, θ, n) -> new θ̄`` per tensor.
        multi_avg_fn (callable, optional): ``([θ̄…], [θ…], n)``, updates in place, called
            once per (device, dtype) group. At most one of the two. Default: SWA.
        use_buffers (bool): average the buffers as well as the parameters. Default: False.
    """

    def __init__(self, model, device=None, avg_fn=None, multi_avg_fn=None, use_buffers=False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long, device=device))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def update_parameters(self, model):
        """Fold ``model``'s current weights into the average (the first call copies them)."""
        if self.use_buffers:
            pairs = zip(itertools.chain(self.module.parameters(), self.module.buffers()),
                        itertools.chain(model.parameters(), model.buffers()))
        else:
            pairs = zip(self.parameters(), model.parameters())
        averaged, current = [], []
        for p_avg, p in pairs:
            averaged.append(p_avg.detach())
            current.append(p.detach().to(p_avg.device))

        if self.n_averaged == 0:
            for p_avg, p in zip(averaged, current):
                p_avg.copy_(p)
        elif self.avg_fn is not None:
            for p_avg, p in zip(averaged, current):
                p_avg.copy_(self.avg_fn(p_avg, p, self.n_averaged.to(p_avg.device)))
        elif self.multi_avg_fn is not None:
            for (device, _), (group_avg, group) in _by_device_and_dtype(averaged, current):
                self.multi_avg_fn(group_avg, group, self.n_averaged.to(device))
        else:  # SWA, one tensor at a time, as torch does on CPU
            swa = get_swa_avg_fn()
            for p_avg, p in zip(averaged, current):
                p_avg.copy_(swa(p_avg, p, self.n_averaged.to(p_avg.device)))

        if not self.use_buffers:  # the buffers follow the model
            for b_avg, b in zip(self.module.buffers(), model.buffers(), strict=True):
                b_avg.detach().copy_(b.detach().to(b_avg.device))
        self.n_averaged += 1


@torch.no_grad()
def update_bn(loader, model, device=None):
    """Recompute the running statistics of every BatchNorm layer of ``model`` from ``loader``.

    Each layer's ``running_mean``/``running_var`` are reset, then one pass over the
    data in train mode with ``momentum=None`` makes them the plain (cumulative)
    average over the batches:  μ ← μ + (μ_batch − μ)/(k+1)  for batch k = 0, 1, …
    Momenta and the model's train/eval mode are restored. A batch is a tensor or a
    list/tuple whose first element is the input. A model without BatchNorm is left as is.

    Args:
        loader (iterable): the batches, e.g. a ``DataLoader``.
        model (Module): the model, e.g. an ``AveragedModel``.
        device (torch.device, optional): move each input there first.
    """
    momenta = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return

    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    for batch in loader:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        model(x if device is None else x.to(device))
    for module, momentum in momenta.items():
        module.momentum = momentum
    model.train(was_training)


class SWALR(LRScheduler):
    """Anneal each group's lr from its current value to ``swa_lr`` in ``anneal_epochs`` steps.

    With s the number of steps since construction (0 at construction),

        t_s = clamp(s / anneal_epochs, 0, 1),   α_s = (1 − cos(π t_s))/2 ("cos")  or  t_s ("linear")
        lr_s = α_s · swa_lr + (1 − α_s) · lr_start

    so the lr reaches ``swa_lr`` at s = anneal_epochs and stays there
    (``anneal_epochs=0``: at once, on the first ``step()``). Like torch, it is
    recursive: each step recovers lr_start from the current lr by undoing the
    previous step, lr_start = (lr − α_{s−1}·swa_lr)/(1 − α_{s−1}), so it composes
    with a scheduler that ran before it. ``swa_lr`` is stored in each param group.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        swa_lr (float or list): the final lr, for all groups or one per group.
        anneal_epochs (int): steps of the annealing phase, ≥ 0. Default: 10.
        anneal_strategy (str): "cos" or "linear". Default: "cos".
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(self, optimizer, swa_lr, anneal_epochs=10, anneal_strategy="cos",
                 last_epoch=-1):
        for lr, group in zip(per_group("swa_lr", optimizer, swa_lr), optimizer.param_groups,
                             strict=True):
            group["swa_lr"] = lr
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self._set_anneal_func(anneal_strategy)
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t):
        return t

    @staticmethod
    def _cosine_anneal(t):
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr, swa_lr, alpha):
        """lr_start from lr = α·swa_lr + (1 − α)·lr_start."""
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _set_anneal_func(self, anneal_strategy):
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal

    def _initial_step(self):
        self._step_count = 0  # s + 1: torch's counter of step() calls, which SWALR reads
        super()._initial_step()

    def step(self, epoch=None):
        self._step_count += 1
        super().step(epoch)

    def get_lr(self):
        s = self._step_count - 1
        if self.anneal_epochs == 0:
            s = max(1, s)
        prev_alpha = self.anneal_func(max(0, min(1, (s - 1) / max(1, self.anneal_epochs))))
        alpha = self.anneal_func(max(0, min(1, s / max(1, self.anneal_epochs))))
        groups = self.optimizer.param_groups
        starts = [self._get_initial_lr(g["lr"], g["swa_lr"], prev_alpha) for g in groups]
        return [g["swa_lr"] * alpha + lr * (1 - alpha) for g, lr in zip(groups, starts, strict=True)]

    def state_dict(self):
        """Every attribute but the optimizer and ``anneal_func`` (rebuilt from its name)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "anneal_func")}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
        self._set_anneal_func(self._anneal_strategy)
