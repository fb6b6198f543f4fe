"""Stochastic gradient descent, optionally with (Nesterov) momentum.

``step`` is the per-parameter loop, the readable reference. With ``foreach=True`` a
param group goes through :func:`_multi_tensor_sgd` instead, as in torch.
"""

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
        foreach (bool | None): step each param group with a few multi-tensor
            ``torch._foreach_*`` calls (:func:`_multi_tensor_sgd`) instead of the loop;
            None (default) takes the loop, as torch does on CPU.
    """

    def __init__(
        self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False,
        foreach=None,
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
            "foreach": foreach,
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

    def _foreach_step(self, group):
        """One multi-tensor step of the group's parameters that have a gradient."""
        params = [p for p in group["params"] if p.grad is not None]
        buffers = [self.state[p].get("momentum_buffer") for p in params] if group["momentum"] else []
        buffers = _multi_tensor_sgd(
            params, [p.grad for p in params], buffers,
            **{k: group[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")},
        )
        for p, b in zip(params, buffers):
            self.state[p]["momentum_buffer"] = b


def _multi_tensor_sgd(params, grads, momentum_buffers, *, lr, momentum, dampening, weight_decay,
                      nesterov, maximize):
    """SGD's update of lists of tensors (torch.optim.sgd._multi_tensor_sgd, dense gradients).

    Each line is one ``torch._foreach_*`` call over the whole list: the same rule and the
    same numbers as :class:`SGD`'s loop. ``momentum_buffers`` holds one buffer or None per
    parameter (None: its first step, b ← g); returns the buffers, updated in place or new.
    The gradients are left as they are (torch's own Nesterov path adds into them).
    """
    if not params:
        return momentum_buffers
    if maximize:
        grads = torch._foreach_neg(grads)
    if weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum != 0:
        if all(b is not None for b in momentum_buffers):
            torch._foreach_mul_(momentum_buffers, momentum)
            torch._foreach_add_(momentum_buffers, grads, alpha=1 - dampening)
        else:  # a first step: new buffers are copies of the gradient (one parameter at a time)
            momentum_buffers = [g.clone() if b is None else b.mul_(momentum).add_(g, alpha=1 - dampening)
                                for b, g in zip(momentum_buffers, grads)]
        grads = torch._foreach_add(grads, momentum_buffers, alpha=momentum) if nesterov else momentum_buffers
    torch._foreach_add_(params, grads, alpha=-lr)
    return momentum_buffers
