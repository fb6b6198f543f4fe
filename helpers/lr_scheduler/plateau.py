"""Reduce the learning rate when a monitored metric stops improving."""

import warnings

import torch
from torch.optim import Optimizer

from .base import EPOCH_DEPRECATION_WARNING, LRScheduler


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when the metric has not improved for a while.

    Call ``scheduler.step(metric)`` once per epoch (e.g. with the validation
    loss). A value m improves on the best so far when

        mode="min", threshold_mode="rel":  m < best · (1 − threshold)
        mode="min", threshold_mode="abs":  m < best − threshold
        mode="max", threshold_mode="rel":  m > best · (1 + threshold)
        mode="max", threshold_mode="abs":  m > best + threshold

    Each step without improvement is a bad epoch. When there have been more than
    ``patience`` bad epochs in a row, every group's lr becomes

        lr ← max(lr · factor, min_lr)     (unless that changes it by eps or less)

    the bad-epoch count restarts, and for ``cooldown`` steps bad epochs are not
    counted. Unlike the other schedulers it takes no initial step and its
    ``last_epoch`` starts at 0.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        mode (str): "min" (the metric should go down) or "max". Default: "min".
        factor (float): factor of the reduction, < 1. Default: 0.1.
        patience (int): number of bad epochs tolerated before reducing.
            Default: 10.
        threshold (float): how much better a value must be to count as an
            improvement. Default: 1e-4.
        threshold_mode (str): "rel" or "abs", see above. Default: "rel".
        cooldown (int): steps after a reduction during which bad epochs are not
            counted. Default: 0.
        min_lr (float or list): lower bound of the lr, for all groups or per
            group. Default: 0.
        eps (float): reductions of the lr by eps or less are skipped.
            Default: 1e-8.
    """

    def __init__(
        self,
        optimizer,
        mode="min",
        factor=0.1,
        patience=10,
        threshold=1e-4,
        threshold_mode="rel",
        cooldown=0,
        min_lr=0,
        eps=1e-8,
    ):
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.factor = factor
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode} is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode} is unknown!")
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.mode_worse = float("inf") if mode == "min" else -float("inf")
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def _is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def step(self, metrics, epoch=None):
        """Record this epoch's metric (a float or a 0-dim tensor); reduce the lr if due.

        ``epoch`` (deprecated, as in torch) sets ``last_epoch`` instead of counting on.
        """
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce_lr(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The number of param groups in the `optimizer` ({len(groups)}) differs "
                    f"from when `ReduceLROnPlateau` was initialized ({len(self.min_lrs)}), "
                    "usually due to a new param group being added to the optimizer. Please "
                    "modify the `min_lrs` field to match the length of the `optimizer` "
                    "param groups."
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr


def is_plateau(scheduler):
    """Whether ``scheduler.step`` needs a metric: our ReduceLROnPlateau or torch's."""
    return isinstance(scheduler, (ReduceLROnPlateau, torch.optim.lr_scheduler.ReduceLROnPlateau))
