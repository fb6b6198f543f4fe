"""The checkers of notebook 13: references and correct alternatives pass (the hidden cases of
grading mode too); every listed mistake fails naming its own cause; plausible wrong answers
fail with a specific message; the library is refused."""

import heapq
import re
import threading
import time

import pytest
import torch
from torch.distributed.optim import ZeroRedundancyOptimizer as TorchZeRO

from helpers.checking import check
from helpers.distributed.optim import ZeroRedundancyOptimizer, partition
from helpers.distributed.workers import average_gradients
from helpers.exercises import nb13
from helpers.mixed_precision import MasterWeights
from helpers.optim.memory import bytes_per_parameter, state_bytes

REFERENCES = {"13.1": bytes_per_parameter, "13.2": MasterWeights, "13.3": average_gradients,
              "13.4": partition, "13.5": nb13.ZeRO1}
MISTAKES = {"13.1": nb13.BYTES_MISTAKES, "13.2": nb13.MASTER_MISTAKES, "13.3": nb13.GRAD_MISTAKES,
            "13.4": nb13.PARTITION_MISTAKES, "13.5": nb13.ZERO_MISTAKES}


def assert_fails(result, cause=None):
    text = str(result)
    assert not result.passed, text
    if cause is not None:
        assert f"likely cause: {cause}" in text, text
    return text


@pytest.mark.parametrize("exercise_id", list(REFERENCES))
def test_the_reference_passes_quickly(exercise_id):
    check(exercise_id, REFERENCES[exercise_id])  # warm-up: first calls pay for lazy imports
    start = time.perf_counter()
    result = check(exercise_id, REFERENCES[exercise_id])
    assert result.passed, str(result)
    assert time.perf_counter() - start < 0.5 * 3  # < 0.5 s alone; the machine is shared


CASES = [(ex, text, wrong) for ex, mistakes in MISTAKES.items() for text, wrong in mistakes.items()]


@pytest.mark.parametrize(("exercise_id", "cause", "wrong"), CASES,
                         ids=[f"{ex}-{i}" for i, (ex, _, _) in enumerate(CASES)])
def test_each_mistake_fails_with_its_cause(exercise_id, cause, wrong):
    assert_fails(check(exercise_id, wrong), cause)


# ------------------------------------------------------------------ correct alternatives


def bytes_from_state(optimizer):
    """optimizer.state instead of the state_dict: the same tensors."""
    total = 0
    for state in optimizer.state.values():
        total += sum(v.nbytes for v in state.values() if torch.is_tensor(v))
    return total / sum(p.numel() for g in optimizer.param_groups for p in g["params"])


class MasterByFloat:
    """.float().clone(), grads assigned with .float(), copy back with .to(bfloat16)."""

    def __init__(self, params, optimizer_class, **defaults):
        self.params = list(params)
        self.master = []
        for p in self.params:
            m = p.detach().float().clone()
            m.requires_grad = True
            self.master.append(m)
        self.optimizer = optimizer_class(self.master, **defaults)

    def step(self):
        with torch.no_grad():
            for p, m in zip(self.params, self.master):
                m.grad = p.grad.float() if p.grad is not None else None
            self.optimizer.step()
            for p, m in zip(self.params, self.master):
                p.data.copy_(m.to(torch.bfloat16))


def average_predivided(params, dist):
    """DDP's order: multiply by 1/world_size, then sum (the same bits for 2, 4, 8 ranks)."""
    for p in params:
        if p.grad is not None:
            p.grad.mul_(1.0 / dist.get_world_size())
            dist.all_reduce(p.grad)


def partition_heap(sizes, world_size):
    heap = [(0, rank) for rank in range(world_size)]
    owners = [None] * len(sizes)
    for size, i in sorted(((s, i) for i, s in enumerate(sizes)), key=lambda t: (-t[0], t[1])):
        load, rank = heapq.heappop(heap)
        owners[i] = rank
        heapq.heappush(heap, (load + size, rank))
    return owners


class ZeRO1RankMajor:
    """torch's order: each rank's parameters in turn, sent from that rank."""

    def __init__(self, params, optimizer_class, comm=None, **defaults):
        self.params, self.comm = list(params), comm
        owners = partition([p.numel() for p in self.params], comm.get_world_size())
        self.by_rank = [[p for p, o in zip(self.params, owners) if o == r]
                        for r in range(comm.get_world_size())]
        self.optim = optimizer_class(self.by_rank[comm.get_rank()], **defaults)

    def step(self):
        self.optim.step()
        with torch.no_grad():
            for rank, params in enumerate(self.by_rank):
                for p in params:
                    self.comm.broadcast(p.data, src=rank)


ALTERNATIVES = [("13.1", bytes_from_state), ("13.2", MasterByFloat), ("13.3", average_predivided),
                ("13.4", partition_heap), ("13.5", ZeRO1RankMajor)]


@pytest.mark.parametrize(("exercise_id", "answer"), ALTERNATIVES, ids=[a for a, _ in ALTERNATIVES])
def test_correct_alternatives_pass(exercise_id, answer):
    assert check(exercise_id, answer).passed, str(check(exercise_id, answer))


@pytest.mark.refuses_library
@pytest.mark.parametrize(("exercise_id", "answer"), ALTERNATIVES, ids=[a for a, _ in ALTERNATIVES])
def test_correct_alternatives_pass_the_hidden_cases(exercise_id, answer, monkeypatch):
    monkeypatch.setenv("STEPWISE_GRADING", "1")
    result = check(exercise_id, answer)
    assert result.passed and "hidden cases" in str(result), str(result)


# ------------------------------------------------------------------ plausible wrong answers


class ZeRO1Unsharded(nb13.ZeRO1):
    """Right numbers, no saving: every rank steps every parameter."""

    def __init__(self, params, optimizer_class, comm=None, **defaults):
        super().__init__(params, optimizer_class, comm=comm, **defaults)
        self.optim = optimizer_class(self.params, **defaults)


class ZeRO1FromOwnRank(nb13.ZeRO1):
    @torch.no_grad()
    def step(self):
        self.optim.step()
        for p in self.params:
            self.comm.broadcast(p, src=self.comm.get_rank())


class ZeRO1OptimizerPerStep(nb13.ZeRO1):
    """A new optimizer every step: Adam's moments start over."""

    def __init__(self, params, optimizer_class, comm=None, **defaults):
        super().__init__(params, optimizer_class, comm=comm, **defaults)
        self.make = lambda: optimizer_class(self.optim.param_groups[0]["params"], **defaults)

    @torch.no_grad()
    def step(self):
        self.optim = self.make()
        super().step()


def test_zero1_without_sharding_fails_on_the_state():
    text = assert_fails(check("13.5", ZeRO1Unsharded))
    assert "rank 0's optimizer state" in text and "memory ZeRO-1 saves" in text


def test_zero1_broadcasting_from_every_rank_is_reported_not_hung():
    text = assert_fails(check("13.5", ZeRO1FromOwnRank))
    assert "rank 0 broadcast(src=0" in text and "rank 1 broadcast(src=1" in text


def test_zero1_with_a_fresh_optimizer_every_step_fails_at_step_2():
    text = assert_fails(check("13.5", ZeRO1OptimizerPerStep))
    assert re.search(r"step:\s+2\n", text), text


def test_all_reduce_with_avg_fails_as_gloo_does():
    def average(params, dist):
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)

    assert "Cannot use ReduceOp.AVG with Gloo" in assert_fails(check("13.3", average))


def test_new_grad_tensors_fail():
    def average(params, dist):
        for p in params:
            if p.grad is not None:
                g = p.grad.clone()
                dist.all_reduce(g)
                p.grad = g / dist.get_world_size()

    assert "average into p.grad itself" in assert_fails(check("13.3", average))


def test_a_rank_that_skips_a_collective_is_reported():
    def average(params, dist):
        if dist.get_rank() == 0:
            average_gradients(params, dist)

    text = assert_fails(check("13.3", average))
    assert "rank 1 returned without calling it" in text


class MasterInBf16(MasterWeights):
    def __init__(self, params, optimizer_class, **defaults):
        super().__init__(params, optimizer_class, **defaults)
        self.master = [p.detach().clone() for p in self.params]
        self.optimizer = optimizer_class(self.master, **defaults)

    @torch.no_grad()
    def step(self):
        for p, m in zip(self.params, self.master):
            m.grad = p.grad
        self.optimizer.step()
        for p, m in zip(self.params, self.master):
            p.copy_(m)


def test_bf16_masters_fail_on_their_dtype():
    assert "each master is a float32 copy" in assert_fails(check("13.2", MasterInBf16))


def test_bytes_counting_the_gradients_too_fails():
    def with_grads(optimizer):
        params = [p for g in optimizer.param_groups for p in g["params"]]
        grads = sum(p.grad.nbytes for p in params if p.grad is not None)
        return bytes_per_parameter(optimizer) + grads / sum(p.numel() for p in params)

    assert "bytes per parameter differs" in assert_fails(check("13.1", with_grads))


def test_a_hanging_rank_leaves_no_thread_behind():
    class Hang(nb13.ZeRO1):
        def step(self):
            while True:
                pass

    before = threading.active_count()
    assert "after 0.5 s" in assert_fails(check("13.5", Hang, timeout=0.5))
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before


# ------------------------------------------------------------------ the library is not an answer


@pytest.mark.refuses_library
@pytest.mark.parametrize(("exercise_id", "library"), [
    ("13.1", bytes_per_parameter), ("13.2", MasterWeights), ("13.3", average_gradients),
    ("13.4", partition), ("13.5", nb13.ZeRO1), ("13.5", ZeroRedundancyOptimizer), ("13.5", TorchZeRO),
])
def test_the_library_is_refused(exercise_id, library):
    assert "the exercise is to write it yourself" in assert_fails(check(exercise_id, library))


@pytest.mark.refuses_library
def test_calling_the_library_is_refused():
    def delegating(sizes, world_size):
        return partition(sizes, world_size)

    class Sub(ZeroRedundancyOptimizer):
        pass

    def measured(optimizer):
        return state_bytes(optimizer) / sum(p.numel() for g in optimizer.param_groups
                                            for p in g["params"])

    assert "calls" in assert_fails(check("13.4", delegating))
    assert "calls" in assert_fails(check("13.1", measured))
    assert_fails(check("13.5", Sub))


def test_unattempted_exercises_say_so():
    class Stub:
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("Exercise 13.5 — replace this line with your code")

    assert check("13.5", Stub).status == "not attempted"
