"""helpers.distributed against torch.distributed itself: real gloo runs on two processes (the
manual all-reduce equal to DDP, ZeRO-1 equal to unsharded Adam and to torch's
ZeroRedundancyOptimizer, bit for bit), and the simulated world against the real collectives."""

import os

import pytest
import torch
import torch.distributed as dist
from torch.distributed.optim import ZeroRedundancyOptimizer as TorchZeRO

from helpers.distributed import workers
from helpers.distributed.launch import free_port, run
from helpers.distributed.optim import ZeroRedundancyOptimizer, partition
from helpers.distributed.simulated import CollectiveError, SimulatedWorld


def test_data_parallel_by_hand_is_ddp_bit_for_bit():
    result = run(workers.data_parallel, 2)
    assert result["gradients equal to DDP's, bit for bit"]
    assert result["parameters equal to DDP's after the steps"]
    assert result["largest gradient difference to one process on the whole batch"] < 1e-6


def test_zero1_is_unsharded_adam_and_torchs_zero_bit_for_bit():
    result = run(workers.zero1, 2)
    assert result["sharded equal to unsharded, bit for bit"]
    assert result["torch's ZeroRedundancyOptimizer equal too"]
    assert result["owners, torch's partition"] == result["owners, helpers.distributed.optim.partition"]
    assert result["state bytes per rank, yours"] == result["state bytes per rank, torch's"]
    # a hand count: Adam keeps m and v (4 bytes each per element) and a 4-byte step per tensor
    sizes = [p.numel() for p in workers.mlp(depth=3).parameters()]
    assert result["state bytes unsharded (every rank)"] == sum(8 * n + 4 for n in sizes)
    owners = partition(sizes, 2)
    assert result["state bytes per rank, yours"] == [
        sum(8 * n + 4 for n, o in zip(sizes, owners) if o == r) for r in range(2)]


def _two_groups(rank, world_size):
    """Our ZeroRedundancyOptimizer and torch's on two param groups, the lr changed mid-run
    through param_groups: the same owners and the same parameters, bit for bit."""
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(s, generator=generator) for s in ((5, 4), (4,), (7,), (3, 3), (2,))]
    runs = []
    for cls in (ZeroRedundancyOptimizer, TorchZeRO, None):
        params = [s.clone().requires_grad_() for s in start]
        groups = [{"params": params[:3]}, {"params": params[3:], "lr": 0.05, "weight_decay": 0.1}]
        optimizer = (torch.optim.AdamW(groups, lr=0.01) if cls is None
                     else cls(groups, torch.optim.AdamW, lr=0.01))
        g = torch.Generator().manual_seed(1)
        for k in range(8):
            if k == 4:
                for group in optimizer.param_groups:
                    group["lr"] /= 2
            for p in params:
                p.grad = torch.randn(p.shape, generator=g)
            optimizer.step()
        runs.append((optimizer, params))
    (ours, a), (theirs, b), (_, c) = runs
    torch_owners = [next(r for r, gs in enumerate(theirs._partition_parameters())
                         if any(p is q for group in gs for q in group["params"])) for p in b]
    return {"same as torch": all(torch.equal(x, y) for x, y in zip(a, b)),
            "same as unsharded": all(torch.equal(x, y) for x, y in zip(a, c)),
            "owners": [ours.owners[p] for p in a], "torch's owners": torch_owners}


def test_our_zero_redundancy_optimizer_follows_torchs_over_groups_and_lr_changes():
    result = run(_two_groups, 2)
    assert result["same as torch"] and result["same as unsharded"]
    assert result["owners"] == result["torch's owners"]


def test_fsdp2_runs_on_gloo_and_matches_unsharded_adam():
    result = run(workers.fsdp2, 2)
    assert result["largest parameter difference to unsharded Adam"] == 0
    assert [s[0] * 2 for s in result["local shards, rank 0"]] == [s[0] for s in result["full shapes"]]
    assert sum(result["state bytes per rank"]) == result["state bytes unsharded"] + 4 * 4  # steps on both


def _collectives(comm):
    """The same collectives, on real gloo (comm = torch.distributed) or simulated."""
    rank, world_size = comm.get_rank(), comm.get_world_size()
    g = torch.Generator().manual_seed(rank)
    total = torch.randn(6, generator=g)
    comm.all_reduce(total, op=comm.ReduceOp.SUM)
    biggest = torch.randn(4, generator=g)
    comm.all_reduce(biggest, op=comm.ReduceOp.MAX)
    sent = torch.randn(3, generator=g)
    comm.broadcast(sent, src=world_size - 1)
    gathered = [torch.empty(2) for _ in range(world_size)]
    comm.all_gather(gathered, torch.randn(2, generator=g))
    return [total, biggest, sent, *gathered]


def test_the_simulated_world_computes_what_gloo_computes():
    real = run(lambda rank, world_size: _collectives(dist), 2)
    simulated = SimulatedWorld(2).run(_collectives)
    assert all(torch.equal(a, b) for a, b in zip(real, simulated[0]))
    assert all(torch.equal(a, b) for a, b in zip(simulated[0], simulated[1]))


def test_the_simulated_world_reports_what_would_hang():
    def mismatched(comm):
        comm.broadcast(torch.zeros(2), src=comm.get_rank())

    def skipped(comm):
        if comm.get_rank() == 0:
            comm.all_reduce(torch.zeros(2))

    with pytest.raises(CollectiveError, match="rank 0 broadcast.src=0.*rank 1 broadcast.src=1"):
        SimulatedWorld(2).run(mismatched)
    with pytest.raises(CollectiveError, match="rank 1 returned without calling it"):
        SimulatedWorld(2).run(skipped)


def test_a_ranks_own_error_comes_before_the_errors_it_causes():
    def fails_on_rank_1(comm):
        if comm.get_rank() == 1:
            raise ValueError("rank 1's bug")
        comm.barrier()

    with pytest.raises(ValueError, match="rank 1's bug"):
        SimulatedWorld(3).run(fails_on_rank_1)


def _fails(rank, world_size):
    if rank == 1:
        raise KeyError("broken on rank 1")
    return "fine"


def test_run_raises_a_workers_error_with_its_rank():
    with pytest.raises(RuntimeError, match="(?s)rank 1 failed.*broken on rank 1"):
        run(_fails, 2)


def test_free_ports_are_free():
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@pytest.mark.parametrize(("sizes", "world_size", "owners"), [
    ([10, 40, 30, 20], 2, [0, 0, 1, 1]),  # 40 → 0, 30 → 1, 20 → 1, 10 → 0
    ([5, 5, 5], 2, [0, 1, 0]),  # ties: the parameters' order, the lowest rank
    ([7, 3], 4, [0, 1]),
])
def test_partition_by_hand(sizes, world_size, owners):
    assert partition(sizes, world_size) == owners



def _dies(rank, world_size):
    if rank == 1:
        os._exit(3)
    return "fine"


def test_a_rank_that_dies_without_a_result_is_reported_at_once():
    with pytest.raises(RuntimeError, match=r"rank 1 exited \(code 3\) without a result"):
        run(_dies, 2, timeout=30)
