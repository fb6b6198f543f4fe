"""Adagrad: per-coordinate step sizes from the sum of squared gradients."""

import torch

from ._validate import nonnegative


class Adagrad(torch.optim.Optimizer):
    r"""Adagrad, drop-in for ``torch.optim.Adagrad``.

    For each parameter θ, with the sum s starting at s₀ (initial_accumulator_value),
    at step t = 1, 2, …:

        g ← −∇f(θ) if maximize else ∇f(θ)
        g ← g + λ·θ                        (if λ ≠ 0: L2 weight decay)
        γ̃ ← γ / (1 + (t − 1)·η)            (learning-rate decay)
        s ← s + g²
        θ ← θ − γ̃ · g / (√s + ε)

    Duchi, Hazan & Singer (2011), "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization". State: ``step`` (a scalar tensor) and
    ``sum``. As in torch, the state is created in the constructor, and every sum
    starts at the constructor's ``initial_accumulator_value``, even for a param
    group that sets its own.

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr (float): learning rate γ (default 1e-2).
        lr_decay (float): learning-rate decay η (default 0).
        weight_decay (float): L2 penalty λ added to the gradient (default 0).
        initial_accumulator_value (float): start value s₀ of the sum (default 0).
        eps (float): ε added to √s for numerical stability (default 1e-10).
        maximize (bool): maximize the objective instead of minimizing (default False).
    """

    def __init__(
        self,
        params,
        lr=1e-2,
        lr_decay=0,
        weight_decay=0,
        initial_accumulator_value=0,
        eps=1e-10,
        *,
        maximize=False,
    ):
        nonnegative(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "maximize": maximize,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p)

    def _init_state(self, p):
        self.state[p]["step"] = torch.tensor(0.0)
        self.state[p]["sum"] = torch.full_like(p, self.defaults["initial_accumulator_value"])

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not self.state[p]:  # a param added after construction
                    self._init_state(p)
                state = self.state[p]
                state["step"] += 1
                t = state["step"].item()
                g = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                lr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
                state["sum"].addcmul_(g, g)
                p.addcdiv_(g, state["sum"].sqrt().add_(group["eps"]), value=-lr)
        return loss
