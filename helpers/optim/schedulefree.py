"""Schedule-Free SGD and AdamW, drop-in for the ``schedulefree`` package (1.4.1).

Defazio et al. (2024), "The Road Less Scheduled", https://arxiv.org/abs/2405.15682

Three sequences per parameter, with c_{t+1} the weight of step t in a running average::

    y_t     = (1 − β)·z_t + β·x_t            where the gradient is taken (train mode)
    z_{t+1} = z_t − γ_t·g_t                  a plain SGD (or Adam-normalized) step
    x_{t+1} = (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}   the average, which is evaluated (eval mode)

    γ_t = lr · min(1, (t + 1) / warmup_steps)        linear warmup (t = 0, 1, …)
    w_t = (t + 1)^r · (max_{s ≤ t} γ_s)^weight_lr_power,   c_{t+1} = w_t / Σ_{s ≤ t} w_s

The optimizer stores only z (``state["z"]``); the parameter tensor itself holds y in
train mode and x in eval mode, and ``train()``/``eval()`` switch it between the two
(y = lerp(x, z, 1 − β) and back). Forgetting ``optimizer.eval()`` evaluates y, not
the average x; forgetting ``optimizer.train()`` makes ``step()`` raise. In train mode
a step updates y directly (derived from the three lines above)::

    y ← (1 − c)·y + c·z + γ·(β·(1 − c) − 1)·g,      z ← z − γ·g

Same argument names, defaults, param-group keys (``k``, ``train_mode``,
``weight_sum``, ``lr_max``, ``scheduled_lr``), state keys and numbers as the
package, so state dicts load both ways. One difference: the package writes its
weight-decayed (AdamW: normalized) gradient into ``p.grad``; these leave ``.grad``
untouched. ``foreach`` is accepted and kept in the groups, but there is one loop.
"""

import torch

from ._validate import nonnegative

_NOT_IN_TRAIN_MODE = (
    "Optimizer was not in train mode when step is called. Please insert .train() and "
    ".eval() calls on the optimizer. See documentation for details."
)


class _ScheduleFree(torch.optim.Optimizer):
    """The y/z/x bookkeeping shared by both: warmup, average weights, train/eval."""

    def __init__(self, params, defaults):
        defaults = {**defaults, "k": 0, "train_mode": False, "weight_sum": 0.0,
                    "lr_max": -1.0, "scheduled_lr": 0.0}
        super().__init__(params, defaults)

    @torch.no_grad()
    def eval(self):
        """Put x, the average, into the parameters (for evaluation and checkpoints)."""
        for group in self.param_groups:
            if group["train_mode"]:
                beta = self._beta(group)
                for p in group["params"]:
                    if "z" in self.state[p]:
                        p.lerp_(self.state[p]["z"], 1 - 1 / beta)  # x = (y − (1 − β)·z) / β
                group["train_mode"] = False

    @torch.no_grad()
    def train(self):
        """Put y, the point the gradient is taken at, into the parameters."""
        for group in self.param_groups:
            if not group["train_mode"]:
                beta = self._beta(group)
                for p in group["params"]:
                    if "z" in self.state[p]:
                        p.lerp_(self.state[p]["z"], 1 - beta)  # y = (1 − β)·z + β·x
                group["train_mode"] = True

    @staticmethod
    def _schedule(group):
        """This step's γ_t and average weight c_{t+1}; records them in the group."""
        k = group["k"]
        lr = group["lr"] * ((k + 1) / group["warmup_steps"] if k < group["warmup_steps"] else 1.0)
        group["scheduled_lr"] = lr
        group["lr_max"] = max(lr, group["lr_max"])
        weight = (k + 1) ** group["r"] * group["lr_max"] ** group["weight_lr_power"]
        group["weight_sum"] += weight
        c = weight / group["weight_sum"] if group["weight_sum"] else 0.0
        return lr, c

    @staticmethod
    def _move(y, z, g, lr, c, beta):
        """One step of the three sequences, on y and z in place."""
        y.lerp_(z, c)
        y.add_(g, alpha=lr * (beta * (1 - c) - 1))
        z.sub_(g, alpha=lr)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one update (in train mode); ``closure`` returns the loss."""
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError(_NOT_IN_TRAIN_MODE)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, c = self._schedule(group)
            self._update_group(group, lr, c)
            group["k"] += 1
        return loss


class SGDScheduleFree(_ScheduleFree):
    r"""Schedule-Free SGD: SGD steps on z, the gradient taken at y, x their average.

    With β = ``momentum``, γ_t and c_{t+1} as in the module docstring::

        g = ∇f(y) + λ·y                  (weight decay as an L2 penalty)
        y ← (1 − c)·y + c·z + γ·(β·(1 − c) − 1)·g
        z ← z − γ·g

    No scheduler is needed: the average x plays the role of the decaying schedule.
    Call ``optimizer.train()`` before training and ``optimizer.eval()`` before
    evaluating or saving. State: ``z``.

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr (float): γ (default 1.0).
        momentum (float): β, strictly between 0 and 1 (default 0.9).
        weight_decay (float): λ, L2 penalty (default 0).
        warmup_steps (int): length of the linear warmup of γ (default 0).
        r (float): polynomial weighting (t + 1)^r of the average (default 0).
        weight_lr_power (float): the average's weights grow as γ_max^power (default 2).
        foreach (bool): accepted for compatibility (default True).
    """

    def __init__(self, params, lr=1.0, momentum=0.9, weight_decay=0, warmup_steps=0, r=0.0,
                 weight_lr_power=2, foreach=True):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if momentum <= 0 or momentum >= 1:
            raise ValueError(f"Momentum must be between 0 and 1 exclusive: {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "r": r,
                                  "warmup_steps": warmup_steps, "weight_lr_power": weight_lr_power,
                                  "weight_decay": weight_decay, "foreach": foreach})

    @staticmethod
    def _beta(group):
        return group["momentum"]

    def _update_group(self, group, lr, c):
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["z"] = p.clone()
            g = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
            self._move(p, state["z"], g, lr, c, group["momentum"])


class AdamWScheduleFree(_ScheduleFree):
    r"""Schedule-Free AdamW: the z steps are normalized by Adam's second moment.

    With β₁ in the role of SGDScheduleFree's momentum, t = k + 1 and v₀ = 0::

        v ← β₂·v + (1 − β₂)·∇f(y)²
        g = ∇f(y) / (√(v / (1 − β₂ᵗ)) + ε) + λ·y       (decay at y, after normalizing)
        y ← (1 − c)·y + c·z + γ·(β₁·(1 − c) − 1)·g
        z ← z − γ·g

    No first moment and no bias correction of it: the y/x interpolation replaces
    momentum. State: ``z``, ``exp_avg_sq``.

    Args:
        params: iterable of parameters or of dicts defining parameter groups.
        lr (float): γ (default 0.0025).
        betas (tuple[float, float]): β₁ (interpolation) and β₂ (default (0.9, 0.999)).
        eps (float): ε, added outside the square root (default 1e-8).
        weight_decay (float): λ (default 0).
        warmup_steps (int): length of the linear warmup of γ (default 0).
        r (float): polynomial weighting (t + 1)^r of the average (default 0).
        weight_lr_power (float): the average's weights grow as γ_max^power (default 2.0).
        foreach (bool): accepted for compatibility (default True).

    Unlike the package, a negative lr, eps or weight_decay raises ValueError.
    """

    def __init__(self, params, lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 warmup_steps=0, r=0.0, weight_lr_power=2.0, foreach=True):
        nonnegative(lr=lr, eps=eps, weight_decay=weight_decay)
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "r": r,
                                  "warmup_steps": warmup_steps, "weight_lr_power": weight_lr_power,
                                  "weight_decay": weight_decay, "foreach": foreach})

    @staticmethod
    def _beta(group):
        return group["betas"][0]

    def _update_group(self, group, lr, c):
        beta1, beta2 = group["betas"]
        bias_correction2 = 1 - beta2 ** (group["k"] + 1)
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["z"] = p.clone()
                state["exp_avg_sq"] = torch.zeros_like(p)
            v = state["exp_avg_sq"]
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            g = p.grad / v.div(bias_correction2).sqrt_().add_(group["eps"])
            if group["weight_decay"]:
                g.add_(p, alpha=group["weight_decay"])
            self._move(p, state["z"], g, lr, c, beta1)
