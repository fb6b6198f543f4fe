"""A world of ranks inside one process, with torch.distributed's collective semantics.

``SimulatedWorld(2).run(fn)`` calls ``fn(dist)`` once per rank, rank 0 in the caller's thread
and the others in threads, each with its own ``dist``: an object with the part of
``torch.distributed``'s API that data parallelism and ZeRO-1 use (``get_rank``,
``get_world_size``, ``broadcast``, ``all_reduce``, ``all_gather``, ``barrier``, ``ReduceOp``).
As in a real process group every rank must call the same collectives in the same order; a
collective completes when all ranks have called it, and a rank that calls another one, or
returns while the others wait, is reported instead of hanging. ``all_reduce`` adds in rank
order (for two ranks: exactly what gloo computes). The exercise checkers use it to run a
learner's distributed code in well under a second; the notebook runs the same code on real
processes with ``helpers.distributed.launch``.
"""

import sys
import threading

import torch
from torch.distributed import ReduceOp

_WAIT = 0.05  # seconds between looks at the other ranks while waiting


class CollectiveError(RuntimeError):
    """The ranks did not call the same collective: a real run would hang or mix up tensors."""


class _Cancelled(BaseException):
    """Stops a helper thread once the world is over (the caller failed or timed out)."""


class SimulatedWorld:
    def __init__(self, world_size):
        self.world_size = world_size
        self._lock = threading.Condition()
        self._posts = {}  # collective number -> {rank: (description, payload)}
        self._results = {}  # collective number -> [each rank's result], or a CollectiveError
        self._finished = {}  # rank -> how its function ended ("returned" / "raised …")
        self._cancelled = False

    def run(self, fn):
        """[fn(dist of rank 0), fn(dist of rank 1), …]; the first rank's error is raised here
        (a rank's own error before the errors of the ranks left waiting for it)."""
        outcomes = [None] * self.world_size
        threads = [threading.Thread(target=self._rank, args=(rank, fn, outcomes), daemon=True)
                   for rank in range(1, self.world_size)]
        for thread in threads:
            thread.start()
        try:
            self._rank(0, fn, outcomes)
            for thread in threads:
                while thread.is_alive():
                    thread.join(_WAIT)
        finally:
            with self._lock:
                self._cancelled = True
                self._lock.notify_all()
        errors = [value for kind, value in outcomes if kind == "raised"]
        if errors:
            raise next((e for e in errors if not isinstance(e, CollectiveError)), errors[0])
        return [value for _, value in outcomes]

    def _rank(self, rank, fn, outcomes):
        helper = rank > 0  # rank 0 runs in the caller's thread, under the caller's tracing
        if helper:
            sys.settrace(self._tracer)
        ending = "stopped"
        try:
            outcomes[rank] = ("returned", fn(_RankDist(self, rank)))
            ending = "returned"
        except _Cancelled:
            outcomes[rank] = ("raised", CollectiveError(f"rank {rank} was stopped"))
        except Exception as error:  # noqa: BLE001 (raised by run(), after the other ranks end)
            outcomes[rank] = ("raised", error)
            ending = f"raised {type(error).__name__}"
        finally:
            if helper:
                sys.settrace(None)
            with self._lock:
                self._finished[rank] = ending
                self._lock.notify_all()

    def _tracer(self, frame, event, arg):
        if self._cancelled:
            raise _Cancelled
        return self._tracer

    def _collective(self, rank, number, description, payload, compute):
        """Post this rank's call number ``number``; wait for all ranks; this rank's result."""
        with self._lock:
            self._posts.setdefault(number, {})[rank] = (description, payload)
            self._lock.notify_all()
            while number not in self._results:
                posts = self._posts[number]
                if len(posts) == self.world_size:
                    descriptions = {r: d for r, (d, _) in sorted(posts.items())}
                    if len(set(descriptions.values())) > 1:
                        calls = ", ".join(f"rank {r} {d}" for r, d in descriptions.items())
                        self._results[number] = CollectiveError(
                            f"collective #{number + 1}: {calls} — every rank must call the same "
                            "collective with the same arguments (a real run hangs or mixes up tensors)")
                    else:
                        self._results[number] = compute([posts[r][1] for r in range(self.world_size)])
                    self._lock.notify_all()
                    break
                gone = sorted(r for r in self._finished if r not in posts)
                if gone:
                    raise CollectiveError(
                        f"collective #{number + 1}: rank {rank} called {description}, but rank "
                        f"{gone[0]} {self._finished[gone[0]]} without calling it (a real run "
                        "hangs here)")
                if self._cancelled:
                    raise _Cancelled
                self._lock.wait(_WAIT)
            result = self._results[number]
        if isinstance(result, CollectiveError):
            raise result
        return result[rank]


class _RankDist:
    """One rank's view of the world: the torch.distributed functions it may call."""

    ReduceOp = ReduceOp

    def __init__(self, world, rank):
        self._world, self._rank, self._calls = world, rank, 0

    def get_rank(self, group=None):
        return self._rank

    def get_world_size(self, group=None):
        return self._world.world_size

    def is_initialized(self):
        return True

    def _call(self, description, payload, compute):
        number, self._calls = self._calls, self._calls + 1
        return self._world._collective(self._rank, number, description, payload, compute)

    def broadcast(self, tensor, src, group=None, async_op=False):
        """``tensor`` ← rank ``src``'s ``tensor``, on every rank, in place."""
        _tensor(tensor, "broadcast")
        shape = f"{tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"
        value = self._call(f"broadcast(src={src}, {shape})", tensor.detach().clone(),
                           lambda values: [values[src]] * len(values))
        with torch.no_grad():
            tensor.copy_(value)

    def all_reduce(self, tensor, op=ReduceOp.SUM, group=None, async_op=False):
        """``tensor`` ← the sum (or max, min, product) of every rank's ``tensor``, in place."""
        _tensor(tensor, "all_reduce")
        if op == ReduceOp.AVG:
            raise ValueError("Cannot use ReduceOp.AVG with Gloo")  # as gloo itself says
        combine = {ReduceOp.SUM: torch.add, ReduceOp.PRODUCT: torch.mul,
                   ReduceOp.MAX: torch.maximum, ReduceOp.MIN: torch.minimum}[op]
        shape = f"{tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"

        def reduce(values):
            total = values[0]
            for value in values[1:]:
                total = combine(total, value)
            return [total] * len(values)

        value = self._call(f"all_reduce(op={op}, {shape})", tensor.detach().clone(), reduce)
        with torch.no_grad():
            tensor.copy_(value)

    def all_gather(self, tensor_list, tensor, group=None, async_op=False):
        """``tensor_list[r]`` ← rank r's ``tensor``, on every rank."""
        _tensor(tensor, "all_gather")
        if len(tensor_list) != self._world.world_size:
            raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors, the world "
                             f"has {self._world.world_size} ranks")
        shape = f"{tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"
        values = self._call(f"all_gather({shape})", tensor.detach().clone(),
                            lambda values: [values] * len(values))
        with torch.no_grad():
            for out, value in zip(tensor_list, values):
                out.copy_(value)

    def barrier(self, group=None, async_op=False):
        self._call("barrier()", None, lambda values: [None] * len(values))


def _tensor(value, name):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} takes a tensor, got {type(value).__name__}")
