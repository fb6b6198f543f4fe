"""Adam and AdamW: bias-corrected moving averages of the gradient and its square.

``step`` is the per-parameter loop, the readable reference. With ``foreach=True`` a
param group goes through :func:`_multi_tensor_adam` instead, as in torch: the same
update on lists of tensors, a few ``torch._foreach_*`` calls for the whole group.
"""

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
        foreach (bool | None): step each param group with a few multi-tensor
            ``torch._foreach_*`` calls (:func:`_multi_tensor_adam`) instead of the loop;
            None (default) takes the loop, as torch does on CPU.
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
        foreach=None,
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
            "foreach": foreach,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # a state_dict saved before `foreach` existed
            group.setdefault("foreach", None)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            if group.get("foreach"):
                self._foreach_step(group)
                continue
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

    def _foreach_step(self, group):
        """One multi-tensor step of the group's parameters that have a gradient."""
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = torch.zeros_like(p)
        states = [self.state[p] for p in params]
        _multi_tensor_adam(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
            [s["step"] for s in states],
            **{k: group[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize",
                                     "decoupled_weight_decay")},
        )


def _multi_tensor_adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, *, lr, betas,
                       eps, weight_decay, amsgrad, maximize, decoupled_weight_decay):
    """Adam's update of lists of tensors (torch.optim.adam._multi_tensor_adam, CPU, no capturable).

    Each line is one ``torch._foreach_*`` call over the whole list: the same rule as
    :class:`Adam`'s loop, the same numbers, but the number of calls does not grow with the
    number of parameters. Only the bias corrections, one Python float per parameter (its
    own step count), are computed in a loop. The gradients are left as they are.
    """
    if not params:
        return
    beta1, beta2 = betas
    torch._foreach_add_(steps, 1)
    if maximize:
        grads = torch._foreach_neg(grads)
    if weight_decay != 0:
        if decoupled_weight_decay:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    if amsgrad:
        torch._foreach_maximum_(max_exp_avg_sqs, exp_avg_sqs)
        exp_avg_sqs = max_exp_avg_sqs
    counts = [t.item() for t in steps]
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, [(1 - beta2**t) ** 0.5 for t in counts])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, [-lr / (1 - beta1**t) for t in counts])


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
        foreach=None,
        maximize=False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # as torch: a loaded Adam state stays AdamW
            group["decoupled_weight_decay"] = True
