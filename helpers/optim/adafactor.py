"""Adafactor: Adam-like scaling whose second moments of a matrix cost one row plus one column."""

import torch
from torch.optim import Optimizer


class Adafactor(Optimizer):
    r"""Adafactor, drop-in for ``torch.optim.Adafactor``.

    For every parameter θ with gradient G, at step t (R, C, V start at 0)::

        G  ← −G                                           if maximize
        β̂  = 1 − t^τ                                      (so 1 − β̂ = t^τ)
        ρ  = min(γ, 1/√t)                                 relative step size
        α  = max(ε₂, RMS(θ))·ρ                            absolute step size
        θ  ← θ − γ·λ·θ                                    decoupled weight decay
        if θ has ≥ 2 dimensions (factored, over the last two, of size n × m):
            R ← β̂·R + (1 − β̂)·mean(G ⊙ G, over columns)    (row_var, n × 1)
            C ← β̂·C + (1 − β̂)·mean(G ⊙ G, over rows)       (col_var, 1 × m)
            V = R·C / max(mean(R), ε₁)                    rank-1 estimate of E[G²]
        else:
            V ← β̂·V + (1 − β̂)·G ⊙ G                       (variance)
        U  = G / max(√V, ε₁)
        Û  = U / max(1, RMS(U)/d)                         update clipping
        θ  ← θ − α·Û

    RMS(x) = ‖x‖₂/√numel(x). A matrix needs n + m numbers of state instead of n·m.
    As in torch (and unlike the paper) ``lr`` caps ρ and scales the weight decay,
    and ε₁ is applied to V and U rather than added to G².

    Paper: N. Shazeer and M. Stern, "Adafactor: Adaptive Learning Rates with
    Sublinear Memory Cost", ICML 2018, https://arxiv.org/abs/1804.04235

    Args:
        params: iterable of parameters, or of dicts defining parameter groups.
        lr (float): γ, the cap on ρ and the weight-decay scale (default: 1e-2).
        beta2_decay (float): τ ≤ 0, sets β̂ = 1 − t^τ (default: -0.8).
        eps (tuple[float | None, float]): (ε₁, ε₂). ε₁ floors √V and mean(R); None means
            the machine epsilon of the parameter's dtype. ε₂ floors RMS(θ) in α
            (default: (None, 1e-3)).
        d (float): clipping threshold on RMS(U), ≥ 1 (default: 1.0).
        weight_decay (float): λ, decoupled weight decay coefficient (default: 0.0).
        maximize (bool): maximize the objective instead of minimizing (default: False).

    State per parameter: ``step`` (a 0-d tensor) and either ``row_var`` and ``col_var``
    (≥ 2-D) or ``variance`` (0-D and 1-D): the same keys as torch, so state dicts load
    both ways. (With ε₁ = None, torch takes the machine epsilon of the first parameter
    of a group for the whole group; we take each parameter's own. They differ only in
    a group that mixes dtypes.)
    """

    def __init__(self, params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
                 weight_decay=0.0, *, maximize=False):
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 >= beta2_decay:
            raise ValueError(f"beta2_decay should be <= 0 but is: {beta2_decay}")
        if eps[0] is not None and not 0.0 <= eps[0]:
            raise ValueError(f"epsilon1 should be >= 0 but is: {eps[0]}")
        if not 0.0 <= eps[1]:
            raise ValueError(f"epsilon2 should be >= 0 but is: {eps[1]}")
        if not 1.0 <= d:
            raise ValueError(f"Clipping threshold d should be >= 1 but is: {d}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight_decay should be >= 0 but is: {weight_decay}")
        defaults = {"lr": lr, "beta2_decay": beta2_decay, "eps": eps, "d": d,
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
            lr, d = group["lr"], group["d"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                eps1, eps2 = group["eps"]
                if eps1 is None:
                    eps1 = torch.finfo(p.dtype).eps
                factored = grad.dim() > 1

                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    if factored:
                        state["row_var"] = grad.new_zeros(grad.shape[:-1] + (1,))
                        state["col_var"] = grad.new_zeros(grad.shape[:-2] + (1, grad.shape[-1]))
                    else:
                        state["variance"] = torch.zeros_like(grad)
                state["step"] += 1
                t = state["step"].item()

                one_minus_beta2 = t ** group["beta2_decay"]
                rho = min(lr, 1 / t**0.5)
                alpha = max(eps2, p.norm(2).item() / p.numel() ** 0.5) * rho  # RMS(θ)·ρ
                if group["weight_decay"] != 0:
                    p.mul_(1 - lr * group["weight_decay"])

                if factored:
                    # mean of G² along a dimension, as ‖G‖²/size (no n × m temporary)
                    row_mean = grad.norm(dim=-1, keepdim=True).square_().div_(grad.size(-1))
                    col_mean = grad.norm(dim=-2, keepdim=True).square_().div_(grad.size(-2))
                    R, C = state["row_var"], state["col_var"]
                    R.lerp_(row_mean, one_minus_beta2)
                    C.lerp_(col_mean, one_minus_beta2)
                    V = (R @ C).div_(R.mean(dim=-2, keepdim=True).clamp_(min=eps1))
                else:
                    state["variance"].lerp_(grad * grad, one_minus_beta2)
                    V = state["variance"].clone()

                update = V.clamp_(min=eps1 * eps1).rsqrt_().mul_(grad)  # G / max(√V, ε₁)
                clip = max(1.0, update.norm(2).item() / (update.numel() ** 0.5 * d))  # RMS(U)/d
                p.add_(update, alpha=-alpha / clip)

        return loss

