"""bf16 parameters stepped through fp32 master weights.

bfloat16 keeps 8 significant bits: next to a weight w its representable values are |w|·2⁻⁸ to
|w|·2⁻⁷ apart, so an update smaller than half that gap rounds away and the weight never moves.
Mixed-precision training therefore keeps an fp32 *master* copy of every parameter:

    master.grad ← float32(p.grad)          (the bf16 gradient, cast up)
    optimizer.step()                       (the update, in fp32, on the master copy)
    p ← bfloat16(master)                   (rounded to nearest for the next forward pass)

Small updates accumulate in the master copy until they move the bf16 weight. The master copy
and the optimizer state live across steps; only the rounded copy is handed to the model.
"""

import torch


class MasterWeights:
    """``optimizer_class(**defaults)`` over fp32 copies of ``params`` (e.g. bf16 tensors).

    ``step()`` casts the gradients up, steps the fp32 masters and copies them back, rounded
    to the parameters' dtype; ``master`` holds the fp32 copies, ``optimizer`` their optimizer.
    A parameter whose ``.grad`` is None is skipped, as optimizers do.
    """

    def __init__(self, params, optimizer_class, **defaults):
        self.params = list(params)
        self.master = [p.detach().to(torch.float32, copy=True).requires_grad_() for p in self.params]
        self.optimizer = optimizer_class(self.master, **defaults)

    @torch.no_grad()
    def step(self):
        for p, master in zip(self.params, self.master):
            master.grad = None if p.grad is None else p.grad.to(torch.float32)
        self.optimizer.step()
        for p, master in zip(self.params, self.master):
            p.copy_(master)

    def zero_grad(self):
        for p in self.params:
            p.grad = None
