"""Lion: the sign of an interpolated momentum (not in torch.optim)."""

import torch

from ._validate import betas_in_unit_interval, nonnegative


class Lion(torch.optim.Optimizer):
    r"""Lion (EvoLved Sign Momentum), with the interface of the torch optimizers.

    For each parameter θ, with m starting at 0, at every step:

        g ← −∇f(θ) if maximize else ∇f(θ)
        c ← β₁·m + (1 − β₁)·g              (interpolation used for the update)
        θ ← θ − γ·(sign(c) + λ·θ)          (decoupled weight decay)
        m ← β₂·m + (1 − β₂)·g              (momentum, with the slower rate β₂)

    Chen et al. (2023), "Symbolic Discovery of Optimization Algorithms",
    Algorithm 2. Every coordinate moves by exactly γ (plus the decay), so γ is
    usually 3–10× smaller than for AdamW and λ as many times larger. State:
    ``exp_avg`` (m).

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr (float): learning rate γ (default 1e-4).
        betas (tuple[float, float]): interpolation β₁ and momentum decay β₂ (default (0.9, 0.99)).
        weight_decay (float): decoupled weight decay λ (default 0).
        maximize (bool): maximize the objective instead of minimizing (default False).
    """

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False):
        nonnegative(lr=lr)
        betas_in_unit_interval(betas)
        nonnegative(weight_decay=weight_decay)
        defaults = {"lr": lr, "betas": betas, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                g = -p.grad if group["maximize"] else p.grad
                m = state["exp_avg"]
                update = m.lerp(g, 1 - beta1).sign_()
                p.mul_(1 - lr * wd)
                p.add_(update, alpha=-lr)
                m.lerp_(g, 1 - beta2)
        return loss
