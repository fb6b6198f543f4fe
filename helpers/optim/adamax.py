"""Adamax: Adam with the infinity norm in place of the second moment."""

import torch

from ._validate import betas_in_unit_interval, nonnegative


class Adamax(torch.optim.Optimizer):
    r"""Adamax, drop-in for ``torch.optim.Adamax``.

    For each parameter θ, with m, u starting at 0, at step t = 1, 2, …:

        g ← −∇f(θ) if maximize else ∇f(θ)
        g ← g + λ·θ                        (if λ ≠ 0: L2 weight decay)
        m ← β₁·m + (1 − β₁)·g              (first moment)
        u ← max(β₂·u, |g| + ε)             (exponentially weighted infinity norm)
        θ ← θ − γ/(1 − β₁ᵗ) · m / u

    Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", section 7.1.
    State: ``step`` (a scalar tensor), ``exp_avg`` (m), ``exp_inf`` (u).

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr (float): learning rate γ (default 2e-3).
        betas (tuple[float, float]): decay rates (β₁, β₂) of m and u (default (0.9, 0.999)).
        eps (float): ε added to |g| for numerical stability (default 1e-8).
        weight_decay (float): L2 penalty λ added to the gradient (default 0).
        maximize (bool): maximize the objective instead of minimizing (default False).
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *, maximize=False):
        nonnegative(lr=lr, eps=eps)
        betas_in_unit_interval(betas)
        nonnegative(weight_decay=weight_decay)
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_inf"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"].item()
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                m = state["exp_avg"].lerp_(g, 1 - beta1)
                u = state["exp_inf"]
                torch.maximum(u.mul_(beta2), g.abs().add_(group["eps"]), out=u)
                p.addcdiv_(m, u, value=-group["lr"] / (1 - beta1**t))
        return loss
