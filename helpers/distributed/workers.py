"""What notebook 13 runs on two processes: each function is called as ``fn(rank, world_size, …)``
inside an initialized gloo process group (``helpers.distributed.launch.run`` or ``torchrun``)
and returns, on rank 0, a dict of results that the other ranks helped compute.

Every rank trains the same seeded MLP on its own half of each batch of the digits task.
"""

import copy

import torch
import torch._dynamo  # noqa: F401 (DistributedDataParallel imports it when built: once here, not per worker)
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.distributed.optim import ZeroRedundancyOptimizer as TorchZeRO
from torch.nn.parallel import DistributedDataParallel

from helpers.optim.memory import state_bytes
from helpers.tasks import digits, mlp

from .optim import ZeroRedundancyOptimizer, partition


def average_gradients(params, comm=dist):
    """Data parallelism by hand: every ``.grad`` ← the mean of the ranks' ``.grad`` (in place)."""
    world_size = comm.get_world_size()
    for p in params:
        if p.grad is not None:
            comm.all_reduce(p.grad, op=comm.ReduceOp.SUM)
            p.grad /= world_size


def _batches(rank, world_size, steps, size=200, seed=0):
    """(inputs, labels) of this rank's share of ``steps`` seeded batches of ``size`` samples."""
    task = digits()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(task.x_train), (size,), generator=generator)
        mine = idx.chunk(world_size)[rank]
        yield task.x_train[mine], task.y_train[mine]


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def data_parallel(rank, world_size, average=average_gradients, steps=5):
    """The gradients of ``average`` (by hand) next to DistributedDataParallel's, for ``steps`` SGD steps."""
    torch.manual_seed(0)
    by_hand = mlp()
    ddp = DistributedDataParallel(copy.deepcopy(by_hand))
    full = copy.deepcopy(by_hand)  # one process, the whole batch: what both must approximate
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.5) for m in (by_hand, ddp, full)]
    same_grads, gap = True, 0.0
    for batch, whole in zip(_batches(rank, world_size, steps), _batches(0, 1, steps)):
        for optimizer in optimizers:
            optimizer.zero_grad()
        _loss(by_hand, batch).backward()
        average(list(by_hand.parameters()), dist)
        _loss(ddp, batch).backward()
        _loss(full, whole).backward()
        grads = [[p.grad for p in m.parameters()] for m in (by_hand, ddp, full)]
        same_grads &= _same(grads[0], grads[1])
        gap = max([gap] + [(a - b).abs().max().item() for a, b in zip(grads[0], grads[2])])
        for optimizer in optimizers:
            optimizer.step()
    params = [list(m.parameters()) for m in (by_hand, ddp, full)]
    return {"gradients equal to DDP's, bit for bit": same_grads,
            "parameters equal to DDP's after the steps": _same(params[0], params[1]),
            "largest gradient difference to one process on the whole batch": gap,
            "largest parameter difference to one process": max(
                (a - b).abs().max().item() for a, b in zip(params[0], params[2]))}


def zero1(rank, world_size, ZeRO1=ZeroRedundancyOptimizer, steps=20, lr=0.01):
    """Adam unsharded, sharded by ``ZeRO1`` (``ZeRO1(params, torch.optim.Adam, lr=…)``, with
    the local optimizer in ``.optim``) and by torch's ZeroRedundancyOptimizer, side by side."""
    torch.manual_seed(0)
    models = [mlp(depth=3) for _ in range(3)]  # three equal copies, 64 → 64 → 64 → 10
    full = torch.optim.Adam(models[0].parameters(), lr=lr)
    ours = ZeRO1(list(models[1].parameters()), torch.optim.Adam, lr=lr)
    theirs = TorchZeRO(models[2].parameters(), torch.optim.Adam, lr=lr)
    for batch in _batches(rank, world_size, steps):
        for model, optimizer in zip(models, (full, ours, theirs)):
            for p in model.parameters():
                p.grad = None
            _loss(model, batch).backward()
            average_gradients(list(model.parameters()))
            optimizer.step()
    params = [list(m.parameters()) for m in models]
    per_rank = [None] * world_size
    dist.all_gather_object(per_rank, (state_bytes(ours.optim), state_bytes(theirs.optim)))
    torch_owners = [next(r for r, groups in enumerate(theirs._partition_parameters())
                         if any(p is q for g in groups for q in g["params"]))
                    for p in models[2].parameters()]
    return {"sharded equal to unsharded, bit for bit": _same(params[1], params[0]),
            "torch's ZeroRedundancyOptimizer equal too": _same(params[2], params[0]),
            "state bytes unsharded (every rank)": state_bytes(full),
            "state bytes per rank, yours": [ours_bytes for ours_bytes, _ in per_rank],
            "state bytes per rank, torch's": [theirs_bytes for _, theirs_bytes in per_rank],
            "owners, torch's partition": torch_owners,
            "owners, helpers.distributed.optim.partition": partition(
                [p.numel() for p in models[2].parameters()], world_size)}


def fsdp2(rank, world_size, steps=5, lr=0.01):
    """FSDP2 (``fully_shard``) on gloo: parameters, gradients and Adam's state sharded."""
    torch.manual_seed(0)
    full = mlp()
    sharded = copy.deepcopy(full)
    for layer in sharded:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(sharded)
    optimizers = [torch.optim.Adam(m.parameters(), lr=lr) for m in (full, sharded)]
    for batch in _batches(rank, world_size, steps):
        for model, optimizer in zip((full, sharded), optimizers):
            optimizer.zero_grad()
            _loss(model, batch).backward()
            if model is full:
                average_gradients(list(model.parameters()))
            optimizer.step()
    local = [tuple(p.to_local().shape) for p in sharded.parameters()]
    gap = max((a - b.full_tensor()).abs().max().item()
              for a, b in zip(full.parameters(), sharded.parameters()))
    per_rank = [None] * world_size
    dist.all_gather_object(per_rank, state_bytes(optimizers[1]))
    return {"local shards, rank 0": local, "full shapes": [tuple(p.shape) for p in full.parameters()],
            "largest parameter difference to unsharded Adam": gap,
            "state bytes unsharded": state_bytes(optimizers[0]), "state bytes per rank": per_rank}
