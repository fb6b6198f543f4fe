"""Muon: momentum whose update matrix is orthogonalized by a Newton–Schulz iteration."""

import math

import torch
from torch.optim import Optimizer


class Muon(Optimizer):
    r"""Muon, drop-in for ``torch.optim.Muon``. For 2-D parameters (weight matrices) only.

    For every matrix parameter θ (A × B) with gradient g, at step t (B₀ = 0)::

        B  ← μ·B + (1 − μ)·g                            (momentum_buffer)
        B̃  = (1 − μ)·g + μ·B      if nesterov,  else B
        O  = NS(B̃)                                      ≈ U·Vᵀ where B̃ = U·S·Vᵀ
        θ  ← θ − γ·λ·θ                                  decoupled weight decay
        θ  ← θ − γ'·O,   γ' = γ·√max(1, A/B)            adjust_lr_fn "original" / None
                         γ' = γ·0.2·√max(A, B)          adjust_lr_fn "match_rms_adamw"

    The momentum buffer is an exponential moving average (torch's docs write
    μ·B + g; the code, and so this class, use the average above).

    NS, the Newton–Schulz orthogonalization (see ``newton_schulz``), replaces
    every singular value of B̃ by roughly 1 while keeping its singular vectors,
    so each step moves every direction of the matrix by about the same amount.
    Like torch it runs in bfloat16.

    Papers: K. Jordan et al., "Muon: An optimizer for hidden layers in neural
    networks", 2024, https://kellerjordan.github.io/posts/muon/ ; J. Liu et al.,
    "Muon is Scalable for LLM Training", 2025, https://arxiv.org/abs/2502.16982

    Args:
        params: iterable of 2-D parameters, or of dicts defining parameter groups.
            Optimize biases, embeddings and other parameters with e.g. AdamW.
        lr (float): γ, learning rate (default: 1e-3).
        weight_decay (float): λ, decoupled weight decay (default: 0.1).
        momentum (float): μ, momentum factor (default: 0.95).
        nesterov (bool): use the Nesterov look-ahead B̃ (default: True).
        ns_coefficients (tuple[float, float, float]): (a, b, c) of the Newton–Schulz
            polynomial (default: (3.4445, -4.7750, 2.0315)).
        eps (float): ε, floor of the norm that B̃ is divided by (default: 1e-7).
        ns_steps (int): number of Newton–Schulz iterations, < 100 (default: 5).
        adjust_lr_fn (str | None): "original", "match_rms_adamw" or None (= "original").

    State per parameter: ``momentum_buffer``, the same key as torch, so state dicts
    load both ways. Unlike torch, which checks them on the first ``step``, bad
    ``ns_steps``, ``ns_coefficients`` and non-2-D parameters (also those added by
    ``add_param_group``) raise ValueError right away.
    """

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=(3.4445, -4.7750, 2.0315), eps=1e-7, ns_steps=5,
                 adjust_lr_fn=None):
        if not 0.0 <= lr:
            raise ValueError(f"Learning rate should be >= 0 but is: {lr}")
        if not 0.0 <= momentum:
            raise ValueError(f"momentum should be >= 0 but is: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"weight decay should be >= 0 but is: {weight_decay}")
        if adjust_lr_fn not in (None, "original", "match_rms_adamw"):
            raise ValueError(f"Adjust learning rate function {adjust_lr_fn} is not supported")
        if ns_steps >= 100:
            raise ValueError("Number of steps must be less than 100 for computational efficiency")
        if len(ns_coefficients) != 3:
            raise ValueError("Coefficients must be a tuple of exactly 3 values")
        defaults = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum,
                    "nesterov": nesterov, "ns_coefficients": ns_coefficients, "eps": eps,
                    "ns_steps": ns_steps, "adjust_lr_fn": adjust_lr_fn}
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        for p in self.param_groups[-1]["params"]:
            if p.ndim != 2:
                raise ValueError(
                    f"Muon only supports 2D parameters whereas we found a parameter "
                    f"with size: {p.size()}"
                )

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad

                state = self.state[p]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(grad)
                buf = state["momentum_buffer"]
                buf.lerp_(grad, 1 - momentum)
                update = grad.lerp(buf, momentum) if group["nesterov"] else buf

                ortho = newton_schulz(update, group["ns_coefficients"], group["ns_steps"],
                                      group["eps"])
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(ortho, alpha=-adjusted_lr(lr, group["adjust_lr_fn"], p.shape))

        return loss


def newton_schulz(G, coefficients, steps, eps, dtype=torch.bfloat16):
    """Approximately orthogonalize the matrix G: keep its singular vectors, set its
    singular values to about 1 (roughly 0.5 to 1.5 with the default coefficients).

    With X = G / max(‖G‖_F, ε) (so every singular value is ≤ 1), repeat ``steps`` times::

        X ← a·X + (b·A + c·A²)·X,   A = X·Xᵀ

    In terms of the SVD X = U·S·Vᵀ this maps each singular value s to
    a·s + b·s³ + c·s⁵, a polynomial that pushes every s in (0, 1] towards 1.
    Computed in ``dtype`` (bfloat16, exactly as torch does) on the wide orientation
    (X·Xᵀ is the smaller Gram matrix).
    """
    a, b, c = coefficients
    tall = G.size(0) > G.size(1)
    X = G.to(dtype, copy=True)
    if tall:
        X = X.T
    X.div_(X.norm().clamp(min=eps))
    for _ in range(steps):
        A = X @ X.T
        B = torch.addmm(A, A, A, beta=b, alpha=c)  # b·A + c·A·A
        X = torch.addmm(X, B, X, beta=a)  # a·X + B·X
    return X.T if tall else X


def adjusted_lr(lr, adjust_lr_fn, shape):
    """Scale lr so the orthogonalized update has a comparable RMS for any shape A × B."""
    A, B = shape
    if adjust_lr_fn in (None, "original"):
        return lr * math.sqrt(max(1, A / B))
    return lr * (0.2 * math.sqrt(max(A, B)))  # "match_rms_adamw"
