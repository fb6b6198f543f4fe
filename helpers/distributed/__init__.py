"""Data parallelism and ZeRO-1 on ``torch.distributed`` (gloo, CPU), for notebook 13.

- ``launch``: ``run(fn, world_size, *args)`` starts the processes (and the torchrun entry point);
- ``optim``: ``ZeroRedundancyOptimizer`` (as torch.distributed.optim's) and its ``partition``;
- ``workers``: what the notebook runs on two processes (DDP, ZeRO-1, FSDP2 side by side);
- ``simulated``: ranks as threads of one process, with the same collective semantics, for checks.
"""
