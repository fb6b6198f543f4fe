"""Adam and AdamW: bias-corrected moving averages of the gradient and its square."""

import torch

from ._validate import betas_in_unit_interval, nonnegative


class Adam(torch.optim.Optimizer):
    r"""Adam, drop-in for ``torch.optim.Adam``.

    For each parameter θ, with m, v, v̂ starting at 0, at step t = 1, 2, …:

        g ← −∇f(θ) if maximize else ∇f(θ)
        if λ ≠ 0:
            θ ← θ − γλ·θ                   (decoupled_weight_decay, as AdamW)
            g ← g + λ·θ                    (otherwise: L2 penalty)
        m ← β₁·m + (1 − β₁)·g              (first moment)
        v ← β₂·v + (1 − β₂)·g²             (second moment)
        v̂ ← max(v̂, v)                      (amsgrad only; then v̂ replaces v below)
        θ ← θ − γ/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)

    Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization"; amsgrad from
    Reddi, Kale & Kumar (2018), "On the Convergence of Adam and Beyond"; decoupled
    weight decay from Loshchilov & Hutter (2019), "Decoupled Weight Decay
    Regularization". State: ``step`` (a scalar tensor), ``exp_avg`` (m),
    ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (v̂, with amsgrad).

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr (float): learning rate γ (default 1e-3).
        betas (tuple[float, float]): decay rates (β₁, β₂) of the moments (default (0.9, 0.999)).
        eps (float): ε added to the denominator for numerical stability (default 1e-8).
        weight_decay (float): weight decay λ (default 0).
        amsgrad (bool): use the running maximum v̂ of v (default False).
        maximize (bool): maximize the objective instead of minimizing (default False).
        decoupled_weight_decay (bool): shrink θ directly instead of adding λ·θ to the
            gradient, which makes this AdamW (default False).
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        amsgrad=False,
        *,
        maximize=False,
        decoupled_weight_decay=False,
    ):
        nonnegative(lr=lr, eps=eps)
        betas_in_unit_interval(betas)
        nonnegative(weight_decay=weight_decay)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
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
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
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
                if group["amsgrad"]:
                    v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(group["eps"])
                p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))
        return loss


class AdamW(Adam):
    r"""AdamW, drop-in for ``torch.optim.AdamW``: :class:`Adam` with
    ``decoupled_weight_decay=True`` and ``weight_decay`` 1e-2 by default,

        θ ← θ − γλ·θ, then the Adam step with the plain gradient,

    so the decay is not rescaled by the adaptive denominator. Loshchilov &
    Hutter (2019), "Decoupled Weight Decay Regularization". Arguments as for
    :class:`Adam`, without ``decoupled_weight_decay``.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        maximize=False,
    ):
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True
        )

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # as torch: a loaded Adam state stays AdamW
            group["decoupled_weight_decay"] = True
