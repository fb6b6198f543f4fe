"""Start a function on ``world_size`` processes joined by a gloo process group, on the CPU.

``run(fn, world_size=2, *args)`` is what the notebook and the tests call: each process
initializes ``torch.distributed`` (gloo, a free TCP port chosen at run time), calls
``fn(rank, world_size, *args)``, and rank 0's return value comes back to the caller through a
queue (never through the workers' stdout). Processes are forked where the platform allows it
(Linux): the child inherits an interpreter that has already imported torch, so a start costs
milliseconds instead of seconds, and it sees the functions defined in a notebook. (Forking a
process that has threads, as a Jupyter kernel does, is safe here: the child runs on the forking
thread only, with one torch thread, and never writes to the parent's streams.) With spawn
(macOS, Windows) ``fn`` must be importable, e.g. from ``helpers.distributed.workers``.

From a shell, a worker of ``helpers.distributed.workers`` runs on two processes started here,
or under ``torchrun``, which starts the processes and sets up the environment itself::

    python -m helpers.distributed.launch zero1
    torchrun --nproc-per-node 2 -m helpers.distributed.launch zero1
"""

import multiprocessing
import os
import pickle
import queue
import socket
import sys
import time
import traceback
import warnings

import torch
import torch.distributed as dist


def free_port():
    """A TCP port nobody listens on right now (tests run side by side: never a fixed one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, fn, args, results):
    torch.set_num_threads(1)  # one thread per process: the ranks share the cores
    # A forked worker must not write to the kernel's streams (their threads are not here):
    # results and errors go through the queue.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the process's lifetime)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world_size)
        try:
            value = fn(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        # pickled here, tensors by value: the queue would share their memory with a process
        # that is about to exit
        results.put((rank, "ok", pickle.dumps(value if rank == 0 else None)))
    except BaseException:  # noqa: BLE001 (reported to the caller, who raises it)
        results.put((rank, "error", traceback.format_exc()))


def start_method():
    """The start method: fork on Linux, else spawn."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform == "linux" \
        else "spawn"


def run(fn, world_size=2, *args, timeout=60):
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` gloo processes; rank 0's result."""
    method = start_method()
    if method == "spawn":
        try:
            pickle.dumps((fn, args))
        except Exception as error:
            raise TypeError(f"this platform starts processes by spawn, so {fn!r} and its arguments "
                            "must be importable (defined in a module, not in a notebook)") from error
    context = multiprocessing.get_context(method)
    results = context.Queue()
    port = free_port()
    processes = [context.Process(target=_worker, args=(rank, world_size, port, fn, args, results))
                 for rank in range(world_size)]
    with warnings.catch_warnings():  # Python ≥ 3.12 warns of fork in a threaded process:
        warnings.simplefilter("ignore", DeprecationWarning)  # the worker uses no other thread
        for p in processes:
            p.start()
    try:
        reports = _collect(results, processes, timeout)
    finally:
        for p in processes:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    errors = sorted((rank, text) for rank, status, text in reports if status == "error")
    if errors:
        rank, text = errors[0]
        raise RuntimeError(f"rank {rank} failed:\n{text}")
    return next(pickle.loads(value) for rank, _, value in reports if rank == 0)


def _collect(results, processes, timeout):
    """Every rank's report; a rank that dies without one (or a timeout) raises at once."""
    reports, deadline = [], time.monotonic() + timeout
    while len(reports) < len(processes):
        try:
            reports.append(results.get(timeout=0.1))
        except queue.Empty:
            reported = {rank for rank, _, _ in reports}
            dead = [rank for rank, p in enumerate(processes)
                    if rank not in reported and p.exitcode is not None]
            if dead:
                raise RuntimeError(f"rank {dead[0]} exited (code {processes[dead[0]].exitcode}) "
                                   "without a result") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result from every rank after {timeout} s") from None
    return reports


def main(argv=None):
    """``torchrun … -m helpers.distributed.launch NAME``: run ``workers.NAME``, print rank 0's result."""
    from . import workers

    name = (argv or sys.argv[1:] or ["zero1"])[0]
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    try:
        result = getattr(workers, name)(rank, world_size)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        print(result)


if __name__ == "__main__":
    if "RANK" in os.environ:  # started by torchrun
        main()
    else:  # python -m helpers.distributed.launch NAME: two processes started here
        from . import workers

        print(run(getattr(workers, (sys.argv[1:] or ["zero1"])[0]), 2))
