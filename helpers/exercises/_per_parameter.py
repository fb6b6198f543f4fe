"""The optimizer loop notebooks 03 and 04 give the learner, for the wrong versions their checkers replay."""

import torch


class PerParameter(torch.optim.Optimizer):
    """``step()`` calls ``self.update(p, grad, state, group)`` for every parameter with a gradient."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, self.state[p], group)
        return loss
