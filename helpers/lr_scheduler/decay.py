"""Schedules that shrink the learning rate by a factor: lambda, step, linear, cosine, ...

Notation in the docstrings: ``t = last_epoch`` (the step whose lr is set),
``lr_0 = base_lr`` (the group's ``initial_lr``), ``lr_t`` the lr at step t.
The recursive schedulers compute ``lr_t`` from the current ``group["lr"]``,
exactly as torch does, so their factors compose with other schedulers.
"""

import math
from bisect import bisect_right
from collections import Counter

from .base import LRScheduler, callable_state, per_group


class _LambdaScheduler(LRScheduler):
    """Shared by LambdaLR and MultiplicativeLR: one user function per param group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.lr_lambdas = per_group("lr_lambda", optimizer, lr_lambda)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def state_dict(self):
        """Every attribute but the optimizer; of each lr_lambda only a callable
        object's attributes (plain functions and lambdas are saved as None)."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [callable_state(fn) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        for fn, saved in zip(self.lr_lambdas, state.pop("lr_lambdas"), strict=True):
            if saved is not None:
                fn.__dict__.update(saved)
        self.__dict__.update(state)


class LambdaLR(_LambdaScheduler):
    """The initial lr times a factor you compute from the step number.

        lr_t = lr_0 · lr_lambda(t)

    Args:
        optimizer (Optimizer): wrapped optimizer.
        lr_lambda (function or list): ``t -> factor``, or one such function per
            param group.
        last_epoch (int): index of the last step. Default: -1.
    """

    def get_lr(self):
        return [lr_0 * fn(self.last_epoch) for fn, lr_0 in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(_LambdaScheduler):
    """Multiply the current lr by a factor you compute from the step number.

        lr_t = lr_{t-1} · lr_lambda(t)        (t ≥ 1)

    Args:
        optimizer (Optimizer): wrapped optimizer.
        lr_lambda (function or list): ``t -> factor``, or one such function per
            param group.
        last_epoch (int): index of the last step. Default: -1.
    """

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial:
            return [group["lr"] for group in groups]
        return [group["lr"] * fn(self.last_epoch) for fn, group in zip(self.lr_lambdas, groups)]


class StepLR(LRScheduler):
    """Multiply the lr by gamma every ``step_size`` steps.

        lr_t = lr_0 · gamma^⌊t / step_size⌋
        recursive: lr_t = lr_{t-1} · gamma  if t > 0 and t % step_size == 0, else lr_{t-1}

    Args:
        optimizer (Optimizer): wrapped optimizer.
        step_size (int): period of the decay, in steps.
        gamma (float): multiplicative factor of the decay. Default: 0.1.
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma for group in groups]

    def _get_closed_form_lr(self):
        return [lr_0 * self.gamma ** (self.last_epoch // self.step_size) for lr_0 in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by gamma at each milestone.

        lr_t = lr_0 · gamma^(number of milestones ≤ t)
        recursive: lr_t = lr_{t-1} · gamma^(times t appears in milestones)

    Args:
        optimizer (Optimizer): wrapped optimizer.
        milestones (list of int): steps at which to decay; a step listed twice
            decays twice.
        gamma (float): multiplicative factor of the decay. Default: 0.1.
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch not in self.milestones:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch] for group in groups]

    def _get_closed_form_lr(self):
        passed = bisect_right(sorted(self.milestones.elements()), self.last_epoch)
        return [lr_0 * self.gamma**passed for lr_0 in self.base_lrs]


class ConstantLR(LRScheduler):
    """Multiply the lr by a constant factor until step ``total_iters``.

        lr_t = lr_0 · factor   for t < total_iters
        lr_t = lr_0            for t ≥ total_iters
        recursive: × factor at t = 0, × 1/factor at t = total_iters

    Args:
        optimizer (Optimizer): wrapped optimizer.
        factor (float): the factor, in [0, 1]. Default: 1/3.
        total_iters (int): number of steps at the reduced lr. Default: 5.
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.factor for group in groups]
        if self.last_epoch != self.total_iters:
            return [group["lr"] for group in groups]
        return [group["lr"] * (1.0 / self.factor) for group in groups]

    def _get_closed_form_lr(self):
        done = self.last_epoch >= self.total_iters
        return [lr_0 * (self.factor + done * (1 - self.factor)) for lr_0 in self.base_lrs]


class LinearLR(LRScheduler):
    """Move the lr factor linearly from ``start_factor`` to ``end_factor``.

        f_t  = start + (end − start) · min(t, total_iters) / total_iters
        lr_t = lr_0 · f_t
        recursive: lr_t = lr_{t-1} · f_t / f_{t-1}, written as
                   lr_{t-1} · (1 + (end − start) / (total_iters·start + (t−1)·(end − start)))

    Args:
        optimizer (Optimizer): wrapped optimizer.
        start_factor (float): factor at step 0, in (0, 1]. Default: 1/3.
        end_factor (float): factor from step ``total_iters`` on, in [0, 1].
            Default: 1.0.
        total_iters (int): number of steps of the linear change. Default: 5.
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError(
                "Starting multiplicative factor expected to be greater than 0 and less or equal to 1."
            )
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group["lr"] for group in groups]
        slope = self.end_factor - self.start_factor
        ratio = 1.0 + slope / (self.total_iters * self.start_factor + (self.last_epoch - 1) * slope)
        return [group["lr"] * ratio for group in groups]

    def _get_closed_form_lr(self):
        steps = min(self.total_iters, self.last_epoch)
        factor = self.start_factor + (self.end_factor - self.start_factor) * steps / self.total_iters
        return [lr_0 * factor for lr_0 in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the lr by gamma every step.

        lr_t = lr_0 · gamma^t
        recursive: lr_t = lr_{t-1} · gamma

    Args:
        optimizer (Optimizer): wrapped optimizer.
        gamma (float): multiplicative factor of the decay.
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma for group in groups]

    def _get_closed_form_lr(self):
        return [lr_0 * self.gamma**self.last_epoch for lr_0 in self.base_lrs]


class PolynomialLR(LRScheduler):
    """Decay the lr to 0 along a polynomial in ``total_iters`` steps.

        lr_t = lr_0 · (1 − min(t, total_iters) / total_iters)^power
        recursive: lr_t = lr_{t-1} · ((1 − t/T) / (1 − (t−1)/T))^power   for t ≤ T

    Args:
        optimizer (Optimizer): wrapped optimizer.
        total_iters (int): number of steps of the decay (T). Default: 5.
        power (float): power of the polynomial. Default: 1.0.
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group["lr"] for group in groups]
        t, total = self.last_epoch, self.total_iters
        factor = ((1.0 - t / total) / (1.0 - (t - 1) / total)) ** self.power
        return [group["lr"] * factor for group in groups]

    def _get_closed_form_lr(self):
        remaining = 1.0 - min(self.total_iters, self.last_epoch) / self.total_iters
        return [lr_0 * remaining**self.power for lr_0 in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Anneal the lr from lr_0 to eta_min along half a cosine (SGDR without restarts).

        lr_t = eta_min + (lr_0 − eta_min) · (1 + cos(π t / T_max)) / 2

    computed recursively, as torch does:

        lr_t = eta_min + (lr_{t-1} − eta_min) · (1 + cos(π t / T_max)) / (1 + cos(π (t−1) / T_max))

    Past T_max the cosine continues (the lr rises back to lr_0 at 2·T_max); at
    the steps where the denominator above is 0 it adds
    (lr_0 − eta_min) · (1 − cos(π / T_max)) / 2 instead.

    Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
    ICLR 2017, https://arxiv.org/abs/1608.03983

    Args:
        optimizer (Optimizer): wrapped optimizer.
        T_max (int): number of steps from lr_0 down to eta_min.
        eta_min (float): minimum learning rate. Default: 0.
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        groups = self.optimizer.param_groups
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [group["lr"] for group in groups]
        if (t - 1 - T) % (2 * T) == 0:  # at the bottom: 1 + cos(π (t−1) / T) = 0
            return [
                group["lr"] + (lr_0 - eta_min) * (1 - math.cos(math.pi / T)) / 2
                for lr_0, group in zip(self.base_lrs, groups)
            ]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (group["lr"] - eta_min) + eta_min for group in groups]

    def _get_closed_form_lr(self):
        cosine = 1 + math.cos(math.pi * self.last_epoch / self.T_max)
        return [self.eta_min + (lr_0 - self.eta_min) * cosine / 2 for lr_0 in self.base_lrs]
