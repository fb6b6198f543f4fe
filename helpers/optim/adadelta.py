"""Adadelta: a per-coordinate step size with units that match the parameter."""

import torch
from torch.optim import Optimizer

from ._validate import nonnegative


class Adadelta(Optimizer):
    r"""Adadelta, drop-in for ``torch.optim.Adadelta``.

    For every parameter θ with gradient g, at step t::

        g ← −g                              if maximize
        g ← g + λ·θ                         if λ ≠ 0        (L2 penalty)
        v ← ρ·v + (1 − ρ)·g²                                (square_avg)
        Δ ← √(u + ε) / √(v + ε) · g
        u ← ρ·u + (1 − ρ)·Δ²                                (acc_delta)
        θ ← θ − γ·Δ

    v and u start at 0. The ratio √(u + ε)/√(v + ε) gives each coordinate its
    own step size, in the units of θ, so ``lr`` = 1 works without tuning.

    Paper: M. D. Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012,
    https://arxiv.org/abs/1212.5701

    Args:
        params: iterable of parameters, or of dicts defining parameter groups.
        lr (float): γ, scales Δ before it is applied (default: 1.0).
        rho (float): ρ, decay of both running averages, in [0, 1] (default: 0.9).
        eps (float): ε, added inside both square roots (default: 1e-6).
        weight_decay (float): λ, L2 penalty added to the gradient (default: 0).
        maximize (bool): maximize the objective instead of minimizing (default: False).

    State per parameter: ``step`` (a 0-d tensor), ``square_avg`` (v), ``acc_delta`` (u),
    the same keys as torch, so state dicts load both ways.
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        nonnegative(lr=lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        nonnegative(eps=eps, weight_decay=weight_decay)
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay,
                    "maximize": maximize}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            lr, rho, eps = group["lr"], group["rho"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])

                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["square_avg"] = torch.zeros_like(p)
                    state["acc_delta"] = torch.zeros_like(p)
                v, u = state["square_avg"], state["acc_delta"]
                state["step"] += 1

                v.mul_(rho).addcmul_(grad, grad, value=1 - rho)
                delta = (u + eps).sqrt_().div_((v + eps).sqrt_()).mul_(grad)
                u.mul_(rho).addcmul_(delta, delta, value=1 - rho)
                p.add_(delta, alpha=-lr)

        return loss
