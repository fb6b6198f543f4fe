"""Rprop: move each coordinate by its own step size, using only the gradient's sign."""

import torch
from torch.optim import Optimizer

from ._validate import nonnegative


class Rprop(Optimizer):
    r"""Resilient backpropagation, drop-in for ``torch.optim.Rprop``.

    Each coordinate i keeps its own step size ηᵢ (starting at ``lr``) and the
    gradient it saw last step, g_prev (starting at 0). At step t::

        g ← −g                                  if maximize
        for each coordinate i:
            if g_prevᵢ·gᵢ > 0:  ηᵢ ← min(ηᵢ·η₊, Γ_max)      same sign: speed up
            if g_prevᵢ·gᵢ < 0:  ηᵢ ← max(ηᵢ·η₋, Γ_min)      sign flipped: slow down
                                gᵢ ← 0                      and skip this step
            otherwise:          ηᵢ unchanged
        θ ← θ − η ⊙ sign(g)
        g_prev ← g

    Only the sign of the gradient is used, never its size. Because a skipped
    coordinate stores g_prevᵢ = 0, it is not slowed down twice in a row.

    Paper: M. Riedmiller and H. Braun, "A Direct Adaptive Method for Faster
    Backpropagation Learning: The RPROP Algorithm", ICNN 1993,
    https://doi.org/10.1109/ICNN.1993.298623

    Args:
        params: iterable of parameters, or of dicts defining parameter groups.
        lr (float): initial step size of every coordinate (default: 1e-2).
        etas (tuple[float, float]): (η₋, η₊), the factors that shrink and grow a step
            size, with 0 < η₋ < 1 < η₊ (default: (0.5, 1.2)).
        step_sizes (tuple[float, float]): (Γ_min, Γ_max), the bounds of every step size
            (default: (1e-6, 50)).
        maximize (bool): maximize the objective instead of minimizing (default: False).

    State per parameter: ``step`` (a 0-d tensor), ``prev`` (g_prev), ``step_size`` (η),
    the same keys as torch, so state dicts load both ways. ``step_size`` is created from
    the group's ``lr`` on a parameter's first step; changing ``lr`` later has no effect.
    """

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 maximize=False):
        nonnegative(lr=lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = {"lr": lr, "etas": etas, "step_sizes": step_sizes, "maximize": maximize}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            eta_minus, eta_plus = group["etas"]
            step_size_min, step_size_max = group["step_sizes"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad.clone()

                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["prev"] = torch.zeros_like(p)
                    state["step_size"] = torch.full_like(p, group["lr"])
                prev, step_size = state["prev"], state["step_size"]
                state["step"] += 1

                agreement = grad * prev
                same_sign, flipped = agreement > 0, agreement < 0
                factor = torch.ones_like(grad)
                factor[same_sign] = eta_plus
                factor[flipped] = eta_minus
                step_size.mul_(factor).clamp_(step_size_min, step_size_max)

                grad[flipped] = 0
                p.addcmul_(grad.sign(), step_size, value=-1)
                prev.copy_(grad)

        return loss
