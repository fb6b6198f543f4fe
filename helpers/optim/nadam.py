"""NAdam: Adam with Nesterov momentum."""

import torch

from ._validate import betas_in_unit_interval, nonnegative


class NAdam(torch.optim.Optimizer):
    r"""NAdam, drop-in for ``torch.optim.NAdam``.

    For each parameter θ, with m, v starting at 0 and the product Π₀ = 1,
    at step t = 1, 2, …:

        g ← −∇f(θ) if maximize else ∇f(θ)
        if λ ≠ 0:
            θ ← θ − γλ·θ                   (decoupled_weight_decay)
            g ← g + λ·θ                    (otherwise: L2 penalty)
        μₜ ← β₁·(1 − ½·0.96^(t·ψ))         (momentum schedule)
        μₜ₊₁ ← β₁·(1 − ½·0.96^((t+1)·ψ))
        Πₜ ← Πₜ₋₁·μₜ
        m ← β₁·m + (1 − β₁)·g
        v ← β₂·v + (1 − β₂)·g²
        d ← √(v / (1 − β₂ᵗ)) + ε
        θ ← θ − γ(1 − μₜ)/(1 − Πₜ) · g / d − γμₜ₊₁/(1 − Πₜμₜ₊₁) · m / d

    Dozat (2016), "Incorporating Nesterov Momentum into Adam". State: ``step``
    and ``mu_product`` (Πₜ), both scalar tensors, ``exp_avg`` (m) and
    ``exp_avg_sq`` (v). As in torch, Πₜ is multiplied in its tensor's dtype:
    float32 (float64 if that is the default dtype) until ``load_state_dict``
    casts it to the parameter's dtype, so a float64 run resumed from a
    checkpoint differs from an uninterrupted one in the last bits.

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr (float): learning rate γ (default 2e-3).
        betas (tuple[float, float]): decay rates (β₁, β₂) of the moments (default (0.9, 0.999)).
        eps (float): ε added to the denominator for numerical stability (default 1e-8).
        weight_decay (float): weight decay λ (default 0).
        momentum_decay (float): ψ of the momentum schedule (default 4e-3).
        decoupled_weight_decay (bool): shrink θ directly instead of adding λ·θ to the
            gradient, as in AdamW (default False).
        maximize (bool): maximize the objective instead of minimizing (default False).
    """

    def __init__(
        self,
        params,
        lr=2e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        momentum_decay=4e-3,
        decoupled_weight_decay=False,
        *,
        maximize=False,
    ):
        nonnegative(lr=lr, eps=eps)
        betas_in_unit_interval(betas)
        nonnegative(weight_decay=weight_decay, momentum_decay=momentum_decay)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
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
            psi = group["momentum_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["mu_product"] = torch.tensor(1.0)
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
                mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
                mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
                mu_product = state["mu_product"].mul_(mu).item()
                m = state["exp_avg"].lerp_(g, 1 - beta1)
                v = state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                d = v.div(1 - beta2**t).sqrt_().add_(group["eps"])
                p.addcdiv_(g, d, value=-lr * (1 - mu) / (1 - mu_product))
                p.addcdiv_(m, d, value=-lr * mu_next / (1 - mu_product * mu_next))
        return loss
