"""Stochastic gradient descent, optionally with (Nesterov) momentum."""

import torch

from ._validate import nonnegative


class SGD(torch.optim.Optimizer):
    r"""Stochastic gradient descent, drop-in for ``torch.optim.SGD``.

    For each parameter θ with gradient ∇f(θ), at step t = 1, 2, …:

        g ← −∇f(θ) if maximize else ∇f(θ)
        g ← g + λ·θ                        (if λ ≠ 0: L2 weight decay)
        if μ ≠ 0:
            b ← g                          (t = 1)
            b ← μ·b + (1 − τ)·g            (t > 1)
            g ← g + μ·b if nesterov else b
        θ ← θ − γ·g

    Momentum as in Polyak (1964); Nesterov momentum in the form of Sutskever et
    al. (2013), "On the importance of initialization and momentum in deep
    learning". The momentum buffer b is kept in ``state[p]["momentum_buffer"]``.

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr (float): learning rate γ (default 1e-3).
        momentum (float): momentum factor μ (default 0).
        dampening (float): dampening τ of the momentum (default 0).
        weight_decay (float): L2 penalty λ added to the gradient (default 0).
        nesterov (bool): use Nesterov momentum (default False); needs μ > 0, τ = 0.
        maximize (bool): maximize the objective instead of minimizing (default False).
    """

    def __init__(
        self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False
    ):
        nonnegative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
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
            lr, mu, tau = group["lr"], group["momentum"], group["dampening"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                if mu != 0:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.clone()
                    else:
                        state["momentum_buffer"].mul_(mu).add_(g, alpha=1 - tau)
                    b = state["momentum_buffer"]
                    g = g.add(b, alpha=mu) if group["nesterov"] else b
                p.add_(g, alpha=-lr)
        return loss
