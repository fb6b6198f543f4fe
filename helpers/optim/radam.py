"""RAdam: Adam with the variance of the adaptive learning rate rectified."""

import torch

from ._validate import betas_in_unit_interval, nonnegative


class RAdam(torch.optim.Optimizer):
    r"""RAdam, drop-in for ``torch.optim.RAdam``.

    For each parameter θ, with m, v starting at 0 and ρ∞ = 2/(1 − β₂) − 1,
    at step t = 1, 2, …:

        g ← −∇f(θ) if maximize else ∇f(θ)
        if λ ≠ 0:
            θ ← θ − γλ·θ                   (decoupled_weight_decay)
            g ← g + λ·θ                    (otherwise: L2 penalty)
        m ← β₁·m + (1 − β₁)·g
        v ← β₂·v + (1 − β₂)·g²
        m̂ ← m / (1 − β₁ᵗ)
        ρₜ ← ρ∞ − 2t·β₂ᵗ / (1 − β₂ᵗ)       (length of the approximated SMA)
        if ρₜ > 5:
            l ← √(1 − β₂ᵗ) / (√v + ε)      (adaptive learning rate)
            r ← √((ρₜ − 4)(ρₜ − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρₜ))   (rectification)
            θ ← θ − γ·m̂·l·r
        else:
            θ ← θ − γ·m̂                    (plain momentum while the variance is intractable)

    Liu et al. (2020), "On the Variance of the Adaptive Learning Rate and
    Beyond". State: ``step`` (a scalar tensor), ``exp_avg`` (m), ``exp_avg_sq`` (v).

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr (float): learning rate γ (default 1e-3).
        betas (tuple[float, float]): decay rates (β₁, β₂) of the moments (default (0.9, 0.999)).
        eps (float): ε added to the denominator for numerical stability (default 1e-8).
        weight_decay (float): weight decay λ (default 0).
        decoupled_weight_decay (bool): shrink θ directly instead of adding λ·θ to the
            gradient, as in AdamW (default False).
        maximize (bool): maximize the objective instead of minimizing (default False).
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        decoupled_weight_decay=False,
        *,
        maximize=False,
    ):
        nonnegative(lr=lr, eps=eps)
        betas_in_unit_interval(betas)
        nonnegative(weight_decay=weight_decay)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
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
            rho_inf = 2 / (1 - beta2) - 1
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"].item()
                g = -p.grad if group["maximize"] else p.grad
                if wd != 0:
                    if group["decoupled_weight_decay"]:
                        p.mul_(1 - lr * wd)
                    else:
                        g = g.add(p, alpha=wd)
                m = state["exp_avg"].lerp_(g, 1 - beta1)
                v = state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                bias_correction2 = 1 - beta2**t
                m_hat = m / (1 - beta1**t)
                rho_t = rho_inf - 2 * t * beta2**t / bias_correction2
                if rho_t > 5.0:
                    adaptive_lr = bias_correction2**0.5 / v.sqrt().add_(group["eps"])
                    rect = (
                        (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
                    ) ** 0.5
                    p.add_(m_hat * lr * adaptive_lr * rect, alpha=-1.0)
                else:
                    p.add_(m_hat * lr, alpha=-1.0)
        return loss
