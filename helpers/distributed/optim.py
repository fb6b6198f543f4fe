"""ZeRO stage 1, drop-in for ``torch.distributed.optim.ZeroRedundancyOptimizer``.

Data parallelism keeps a full copy of the optimizer state on every rank. ZeRO-1
(Rajbhandari et al., 2020) shards it: every parameter has one owner rank, which alone keeps
its state and updates it; then every rank receives the updated parameter from its owner.

    owners = partition(sizes, world_size)       (largest first, to the least-loaded rank)
    optim  = optimizer_class(parameters with owner == rank)
    step():  optim.step()                        (this rank's shard, gradients already averaged)
             for p: broadcast(p, src=owner(p))   (every rank ends with every updated parameter)

The numbers are bit for bit those of the unsharded optimizer: each parameter is updated by the
same optimizer from the same gradient, only on one rank instead of all. Each rank's state is
about 1/world_size of the whole.
"""

import torch
import torch.distributed as dist
from torch.optim import Optimizer


def partition(sizes, world_size, load=None):
    """The owner rank of each parameter, given their sizes (numbers of elements).

    torch's rule: parameters in order of size, largest first (equal sizes in their order),
    each to the rank with the fewest elements so far (the lowest such rank on a tie).
    ``load``: the elements each rank owns already, updated in place (torch carries it from one
    param group to the next).
    """
    owners, load = [0] * len(sizes), [0] * world_size if load is None else load
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        rank = load.index(min(load))
        owners[i] = rank
        load[rank] += sizes[i]
    return owners


class ZeroRedundancyOptimizer(Optimizer):
    """``optimizer_class`` with its state sharded across the ranks of ``process_group``.

    As torch's (``parameters_as_bucket_view=False``, ``overlap_with_ddp=False``): ``optim`` is
    this rank's local optimizer; ``param_groups`` holds every parameter, and its
    hyperparameters (``lr``, …) are handed to ``optim`` before every step. The state stays
    in ``optim`` (no ``consolidate_state_dict``). ``comm`` is the module whose collectives are
    used: ``torch.distributed``, or one rank of a ``helpers.distributed.simulated.SimulatedWorld``.
    """

    def __init__(self, params, optimizer_class, process_group=None, parameters_as_bucket_view=False,
                 overlap_with_ddp=False, *, comm=dist, **defaults):
        if parameters_as_bucket_view or overlap_with_ddp:
            raise NotImplementedError("this reference has no bucket views and no DDP overlap")
        super().__init__(params, defaults)
        self.comm, self.process_group = comm, process_group
        rank, world_size = comm.get_rank(process_group), comm.get_world_size(process_group)
        self.owners, load = {}, [0] * world_size
        for group in self.param_groups:
            sizes = [p.numel() for p in group["params"]]
            self.owners.update(zip(group["params"], partition(sizes, world_size, load)))
        self.optim = optimizer_class(
            [{**group, "params": [p for p in group["params"] if self.owners[p] == rank]}
             for group in self.param_groups], **defaults)

    def step(self, closure=None):
        for group, local in zip(self.param_groups, self.optim.param_groups):
            local.update({k: v for k, v in group.items() if k != "params"})
        loss = self.optim.step(closure) if closure is not None else self.optim.step()
        with torch.no_grad():
            for p, owner in self.owners.items():
                self.comm.broadcast(p, src=owner, group=self.process_group)
        return loss
