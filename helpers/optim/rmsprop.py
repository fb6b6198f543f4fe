"""RMSprop: divide the gradient by a running root mean square of recent gradients."""

import torch

from ._validate import nonnegative


class RMSprop(torch.optim.Optimizer):
    r"""RMSprop, drop-in for ``torch.optim.RMSprop``.

    For each parameter θ, with v, ḡ, b starting at 0, at step t = 1, 2, …:

        g ← −∇f(θ) if maximize else ∇f(θ)
        g ← g + λ·θ                        (if λ ≠ 0: L2 weight decay)
        v ← α·v + (1 − α)·g²               (running mean of g²)
        if centered:
            ḡ ← α·ḡ + (1 − α)·g            (running mean of g)
            d ← √(v − ḡ²) + ε
        else:
            d ← √v + ε
        if μ > 0:
            b ← μ·b + g / d
            θ ← θ − γ·b
        else:
            θ ← θ − γ·g / d

    Hinton, Srivastava & Swersky (2012), "Neural Networks for Machine Learning",
    lecture 6e; the centered variant from Graves (2013), "Generating Sequences
    With Recurrent Neural Networks". State: ``step`` (a scalar tensor),
    ``square_avg`` (v), ``momentum_buffer`` (b, if μ > 0), ``grad_avg`` (ḡ, if
    centered). ``maximize`` is keyword-only here (positional in torch, after
    ``capturable`` and ``foreach``, which are not supported).

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr (float): learning rate γ (default 1e-2).
        alpha (float): smoothing constant α (default 0.99).
        eps (float): ε added to the denominator for numerical stability (default 1e-8).
        weight_decay (float): L2 penalty λ added to the gradient (default 0).
        momentum (float): momentum factor μ (default 0).
        centered (bool): normalize by an estimate of the variance of g instead of
            its second moment (default False).
        maximize (bool): maximize the objective instead of minimizing (default False).
    """

    def __init__(
        self,
        params,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0,
        momentum=0,
        centered=False,
        *,
        maximize=False,
    ):
        nonnegative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
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
            alpha, mu = group["alpha"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["square_avg"] = torch.zeros_like(p)
                    if mu > 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    if group["centered"]:
                        state["grad_avg"] = torch.zeros_like(p)
                state["step"] += 1
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                v = state["square_avg"].mul_(alpha).addcmul_(g, g, value=1 - alpha)
                if group["centered"]:
                    g_avg = state["grad_avg"].lerp_(g, 1 - alpha)
                    d = v.addcmul(g_avg, g_avg, value=-1).sqrt_().add_(group["eps"])
                else:
                    d = v.sqrt().add_(group["eps"])
                if mu > 0:
                    b = state["momentum_buffer"].mul_(mu).addcdiv_(g, d)
                    p.add_(b, alpha=-group["lr"])
                else:
                    p.addcdiv_(g, d, value=-group["lr"])
        return loss
