"""ASGD: SGD with a decaying step size, plus a running average of the iterates."""

import torch
from torch.optim import Optimizer

from ._validate import nonnegative


class ASGD(Optimizer):
    r"""Averaged stochastic gradient descent, drop-in for ``torch.optim.ASGD``.

    For every parameter θ with gradient g, at step t (η₀ = γ, μ₀ = 1, ax = 0)::

        g  ← −g                                 if maximize
        g  ← g + λ_wd·θ                         if λ_wd ≠ 0   (L2 penalty)
        θ  ← (1 − λ·η)·θ − η·g                  η = eta from the previous step
        ax ← θ                                  if μ = 1
        ax ← ax + μ·(θ − ax)                    otherwise     (running mean of θ)
        η  ← γ / (1 + λ·γ·t)^α                                (eta for the next step)
        μ  ← 1 / max(1, t − t₀)                               (mu for the next step)

    Up to step t₀ + 2, ax simply copies θ; from then on it is the mean of the
    iterates θ of steps t₀ + 2, …, t. The average ``ax`` is *not* copied into the parameters:
    read it from ``optimizer.state[p]["ax"]`` to evaluate the averaged model.

    Paper: B. T. Polyak and A. B. Juditsky, "Acceleration of Stochastic
    Approximation by Averaging", SIAM J. Control Optim. 30(4), 1992,
    https://doi.org/10.1137/0330046

    Args:
        params: iterable of parameters, or of dicts defining parameter groups.
        lr (float): γ, the initial step size (default: 1e-2).
        lambd (float): λ, decay term, used both to shrink θ and to decay η (default: 1e-4).
        alpha (float): α, the power in η's decay (default: 0.75).
        t0 (float): t₀, the step after which averaging starts (default: 1e6).
        weight_decay (float): λ_wd, L2 penalty added to the gradient (default: 0).
        maximize (bool): maximize the objective instead of minimizing (default: False).

    State per parameter: ``step``, ``eta``, ``mu`` (0-d tensors in the default dtype,
    float32 unless it is float64: torch rounds η and μ to it, and so do we) and ``ax``.
    The same keys as torch, so state dicts load both ways.
    """

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, *,
                 maximize=False):
        nonnegative(lr=lr, weight_decay=weight_decay)
        defaults = {"lr": lr, "lambd": lambd, "alpha": alpha, "t0": t0,
                    "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            lr, lambd, alpha, t0 = group["lr"], group["lambd"], group["alpha"], group["t0"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])

                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["eta"] = torch.tensor(float(lr))
                    state["mu"] = torch.tensor(1.0)
                    state["ax"] = torch.zeros_like(p)
                state["step"] += 1
                t, eta, mu = state["step"].item(), state["eta"].item(), state["mu"].item()

                p.mul_(1 - lambd * eta).add_(grad, alpha=-eta)
                if mu == 1:
                    state["ax"].copy_(p)
                else:
                    state["ax"].add_(p.sub(state["ax"]).mul_(mu))

                # like torch: new η and μ are rounded to the default dtype, whatever the state's
                state["eta"].copy_(torch.tensor(lr / (1 + lambd * lr * t) ** alpha))
                state["mu"].copy_(torch.tensor(1 / max(1, t - t0)))

        return loss
