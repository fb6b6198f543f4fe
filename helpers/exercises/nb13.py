"""Notebook 13, optimizers at scale: state memory, bf16 master weights, data parallelism
and ZeRO-1.

13.1 and 13.4 are functions, compared with a reference on every case. 13.2 (master weights) is
stepped next to ``helpers.mixed_precision.MasterWeights``, bf16 parameters and fp32 masters
compared bit for bit after every step. 13.3 and 13.5 are distributed code: they run in a
``SimulatedWorld`` (ranks as threads of this process, torch.distributed's collective
semantics), because a check must take well under a second and cannot start processes on every
platform; the notebook runs the same code on two real gloo processes. Each list of mistakes
holds the typical wrong versions; a cause is named only when its replay gives the candidate's
numbers on the failing case and every case before it.
"""

import torch
from torch.distributed.optim import ZeroRedundancyOptimizer as TorchZeRO

from helpers.checking import Mismatch, case, exercise, hidden_pass, outside_candidate
from helpers.checking_tools import compare_function, expect_close
from helpers.distributed.optim import ZeroRedundancyOptimizer, partition
from helpers.distributed.simulated import SimulatedWorld
from helpers.distributed.workers import average_gradients
from helpers.mixed_precision import MasterWeights
from helpers.optim import SGD, Adafactor, Adam, Lion
from helpers.optim.memory import bytes_per_parameter, parameter_count, state_bytes


def _switches(base, **mistake):
    """A subclass of ``base`` with the given class attributes (the mistake's switches)."""
    name = base.__name__ + "(" + ", ".join(f"{k}={v}" for k, v in mistake.items()) + ")"
    return type(name, (base,), mistake)


def _tensors(shapes, seed, dtype=torch.float32, scale=1.0, shift=0.0):
    generator = torch.Generator().manual_seed(seed)
    return [shift + scale * torch.randn(s, generator=generator, dtype=dtype) for s in shapes]


# --------------------------------------------------------------------------
# 13.1 Bytes of optimizer state per parameter
# --------------------------------------------------------------------------


def _stepped(cls, shapes=((4, 6), (6,), (3, 4)), dtype=torch.float32, no_grad=(), steps=2,
             groups=None, seed=0, **settings):
    """An optimizer of ``cls`` after ``steps`` steps on seeded gradients."""
    params = [p.requires_grad_() for p in _tensors(shapes, seed, dtype)]
    if groups:
        optimizer = cls([{"params": params[i::len(groups)], **g} for i, g in enumerate(groups)],
                        **settings)
    else:
        optimizer = cls(params, **settings)
    for k in range(steps):
        for i, (p, g) in enumerate(zip(params, _tensors(shapes, seed + 1 + k, dtype))):
            p.grad = None if i in no_grad else g
        optimizer.step()
    return optimizer


def _bytes_wrong(*, elements=False, per_tensor=False, only_with_state=False, no_scalars=False,
                 from_state=False):
    def wrong(optimizer):
        total = 0
        stated = optimizer.state_dict()["state"]
        for per_parameter in stated.values():
            for value in per_parameter.values():
                if not isinstance(value, torch.Tensor) or (no_scalars and value.dim() == 0):
                    continue
                total += value.numel() * (1 if elements else value.element_size())
        params = [p for g in optimizer.param_groups for p in g["params"]]
        if only_with_state:
            params = [p for p in params if optimizer.state.get(p)]
        if not params:
            return 0.0
        return total / (len(params) if per_tensor else sum(p.numel() for p in params))
    return wrong


BYTES_MISTAKES = {
    "you counted elements, not bytes: multiply each tensor's numel() by its element_size() "
    "(4 for float32, 8 for float64)": _bytes_wrong(elements=True),
    "you divided by the number of parameter tensors; divide by the number of parameter "
    "elements (the sum of p.numel())": _bytes_wrong(per_tensor=True),
    "the step counters are missing: every tensor in the state counts, the 0-dimensional "
    "'step' tensors too": _bytes_wrong(no_scalars=True),
    "you divided by the parameters that have state only; a parameter without state still "
    "counts (it is a parameter of the optimizer, with 0 bytes of state)":
        _bytes_wrong(only_with_state=True),
}


def _bytes_cases():
    cases = {
        "SGD without momentum (its buffers are None)": (_stepped(SGD, lr=0.1),),
        "SGD, momentum 0.9": (_stepped(SGD, lr=0.1, momentum=0.9),),
        "Adam": (_stepped(Adam, lr=0.01),),
        "Adam, float64 parameters": (_stepped(Adam, dtype=torch.float64, lr=0.01),),
        "Adam, parameter 1 never has a gradient": (_stepped(Adam, no_grad=(1,), lr=0.01),),
        "Adam(amsgrad=True), two param groups": (_stepped(Adam, groups=[{}, {"lr": 0.1}],
                                                          lr=0.01, amsgrad=True),),
        "Adafactor (factored second moment)": (_stepped(Adafactor, shapes=((8, 12), (12,)), lr=0.01),),
        "Lion": (_stepped(Lion, lr=0.01),),
        "before the first step (no state yet)": (_stepped(Adam, steps=0, lr=0.01),),
    }
    if hidden_pass():
        cases["hidden: Adam, other shapes"] = (_stepped(Adam, shapes=((5, 7), (2,), (7,), (3, 3)),
                                                        seed=5, no_grad=(2,), lr=0.01),)
        cases["hidden: SGD momentum, float64"] = (_stepped(SGD, dtype=torch.float64, seed=9,
                                                           lr=0.1, momentum=0.5),)
        cases["hidden: Adafactor, float64"] = (_stepped(Adafactor, shapes=((6, 10), (3,), (4, 4)),
                                                        dtype=torch.float64, seed=3, lr=0.01),)
    return cases


@exercise("13.1", "Bytes of optimizer state per parameter", reference=bytes_per_parameter,
          library=[bytes_per_parameter, state_bytes, parameter_count], hints=[
    ("optimizer.state_dict()['state'] maps each parameter's index to a dict of its state: "
     "tensors (moments, buffers, step counters) and sometimes None or numbers. Add up the bytes "
     "of the tensors, then divide by the number of parameter elements."),
    ("A tensor's bytes are t.numel() * t.element_size(). The parameters are "
     "[p for g in optimizer.param_groups for p in g['params']], each counting p.numel() "
     "elements, with or without state."),
    ("total = sum(v.numel() * v.element_size() for s in optimizer.state_dict()['state'].values() "
     "for v in s.values() if isinstance(v, torch.Tensor)); return total / sum(p.numel() for g "
     "in optimizer.param_groups for p in g['params'])."),
])
def check_state_bytes(candidate):
    with outside_candidate():
        cases = _bytes_cases()
    seen = []
    for name, (optimizer,) in cases.items():
        expected = bytes_per_parameter(optimizer)
        before = repr(optimizer.state_dict())
        with case(name):
            got = candidate(optimizer)
        seen.append((optimizer, got))
        try:
            expect_close(name, expected, got, what="bytes per parameter")
        except Mismatch as mismatch:
            mismatch.cause = mismatch.cause or next(
                (text for text, wrong in BYTES_MISTAKES.items()
                 if all(_same_number(wrong(o), answer) for o, answer in seen)), None)
            raise
        if repr(optimizer.state_dict()) != before:
            raise Mismatch(name, cause="your function changed the optimizer's state; only read it")
    return (f"{len(cases)} optimizers (SGD with and without momentum, Adam in float32 and "
            "float64, with a parameter without gradient, AMSGrad with two groups, Adafactor, "
            "Lion, before the first step)")


def _same_number(a, b):
    try:
        expect_close("", a, b)
    except Mismatch:
        return False
    return True


# --------------------------------------------------------------------------
# 13.2 bf16 parameters, fp32 master weights
# --------------------------------------------------------------------------


class _Master(MasterWeights):
    """The reference with class attributes that switch one mistake on."""

    bf16_direct = master_refreshed = no_copy_back = copy_back_first = False

    def __init__(self, params, optimizer_class, **defaults):
        super().__init__(params, optimizer_class, **defaults)
        if self.bf16_direct:
            self.optimizer = optimizer_class(self.params, **defaults)

    @torch.no_grad()
    def step(self):
        if self.bf16_direct:
            self.optimizer.step()
            return
        for p, master in zip(self.params, self.master):
            if self.master_refreshed:
                master.copy_(p)
            master.grad = None if p.grad is None else p.grad.to(torch.float32)
        if self.copy_back_first:
            for p, master in zip(self.params, self.master):
                p.copy_(master)
        self.optimizer.step()
        if not (self.no_copy_back or self.copy_back_first):
            for p, master in zip(self.params, self.master):
                p.copy_(master)


MASTER_MISTAKES = {
    "your optimizer updates the bf16 parameters directly: updates below bf16's resolution "
    "round away; build it over the fp32 master copies": _switches(_Master, bf16_direct=True),
    "your master copy is refreshed from the bf16 parameters every step, so what the rounding "
    "dropped is lost; make the fp32 copies once, in __init__, and keep them":
        _switches(_Master, master_refreshed=True),
    "the updated masters are never copied back: p.copy_(master) after optimizer.step() (it "
    "rounds to bf16)": _switches(_Master, no_copy_back=True),
    "you copied the masters back before optimizer.step(): the parameters lag one step behind; "
    "step first, then copy": _switches(_Master, copy_back_first=True),
}

# (name, optimizer class, settings, steps, {step: parameters without gradient}, lr change)
MASTER_CASES = [
    ("SGD lr 1e-3: updates below bf16's resolution", SGD, {"lr": 1e-3}, 20, {}, None),
    ("Adam lr 1e-3, parameter 1 without gradient at steps 3–5", Adam, {"lr": 1e-3}, 12,
     {3: {1}, 4: {1}, 5: {1}}, None),
    ("SGD momentum 0.9, weight decay, lr halved before step 50", SGD,
     {"lr": 3e-3, "momentum": 0.9, "weight_decay": 0.01}, 150, {}, 50),
]


def _master_run(cls, name, optimizer_class, settings, steps, no_grad, lr_change, seed):
    shapes = ((4, 5), (5,), (3,))
    params = [p.to(torch.bfloat16).requires_grad_()
              for p in _tensors(shapes, seed, scale=0.5, shift=1.0)]
    generator = torch.Generator().manual_seed(seed + 1)
    with case(name):
        wrapper = cls(params, optimizer_class, **settings)
    history = []
    for k in range(1, steps + 1):
        grads = [torch.randn(s, generator=generator).to(torch.bfloat16) for s in shapes]
        with case(f"{name} (step {k})"):
            if k == lr_change:
                for group in wrapper.optimizer.param_groups:
                    group["lr"] /= 2
            for i, (p, g) in enumerate(zip(params, grads)):
                p.grad = None if i in no_grad.get(k, ()) else g.clone()
            given = [None if p.grad is None else p.grad.clone() for p in params]
            wrapper.step()
        for i, (p, g) in enumerate(zip(params, given)):
            if g is not None and not torch.equal(p.grad, g):
                raise Mismatch(name, g, p.grad, step=k, detail=f"parameter {i}'s .grad changed",
                               cause="leave p.grad as it is: cast a copy up for the master")
        history.append([p.detach().clone() for p in params])
    return params, wrapper, history


@exercise("13.2", "A bf16 master-weights step", reference=MasterWeights,
          library=[MasterWeights], hints=[
    ("In __init__: self.master = fp32 copies of the parameters (detached, cloned, "
     "requires_grad_()), and self.optimizer = optimizer_class(self.master, **defaults). The "
     "bf16 parameters are never handed to the optimizer."),
    ("step(): for each pair, master.grad = p.grad cast to float32 (None stays None); "
     "self.optimizer.step(); then copy each master back into its parameter, in place "
     "(p.copy_(master) rounds to bf16). All under torch.no_grad()."),
    ("self.master = [p.detach().to(torch.float32, copy=True).requires_grad_() for p in "
     "self.params]; step: master.grad = None if p.grad is None else p.grad.float(); "
     "self.optimizer.step(); p.copy_(master)."),
])
def check_master_weights(candidate):
    seeds = [7] if hidden_pass() else [0]  # the grader: other parameters and gradients
    for seed in seeds:
        for spec in MASTER_CASES:
            name = spec[0] + (f", seed {seed}" if seed else "")
            with outside_candidate():
                ref_params, ref, expected = _master_run(MasterWeights, name, *spec[1:], seed)
            params, wrapper, got = _master_run(candidate, name, *spec[1:], seed)
            _expect_masters(name, wrapper, params)
            for k, (e, g) in enumerate(zip(expected, got), start=1):
                for i, (ei, gi) in enumerate(zip(e, g)):
                    try:
                        expect_close(name, ei, gi, what=f"bf16 parameter {i}", step=k, rtol=0, atol=0)
                    except Mismatch as mismatch:
                        mismatch.cause = mismatch.cause or _replayed(name, spec, seed, got,
                                                                     wrapper.master)
                        raise
            for i, (e, g) in enumerate(zip(ref.master, wrapper.master)):
                try:
                    expect_close(name, e, g, what=f"master {i} after the last step", rtol=0, atol=0)
                except Mismatch as mismatch:
                    mismatch.cause = mismatch.cause or _replayed(name, spec, seed, got,
                                                                 masters=wrapper.master)
                    raise
    return (f"{len(MASTER_CASES)} cases (SGD with updates below bf16's resolution, Adam with "
            "missing gradients, 150 steps of momentum and weight decay with an lr change): bf16 "
            "parameters and fp32 masters equal bit for bit after every step")


def _expect_masters(name, wrapper, params):
    master = getattr(wrapper, "master", None)
    if not isinstance(master, (list, tuple)) or len(master) != len(params):
        raise Mismatch(name, f"self.master, a list of {len(params)} fp32 tensors", type(master).__name__,
                       cause="keep the fp32 copies in self.master, one per parameter, in order")
    for i, (m, p) in enumerate(zip(master, params)):
        if not isinstance(m, torch.Tensor) or m.dtype != torch.float32 or m.shape != p.shape:
            raise Mismatch(name, f"float32 of shape {tuple(p.shape)}",
                           getattr(m, "dtype", type(m).__name__), detail=f"self.master[{i}]",
                           cause="each master is a float32 copy of its parameter")
        if p.dtype != torch.bfloat16:
            raise Mismatch(name, "torch.bfloat16", p.dtype, detail=f"parameter {i}'s dtype",
                           cause="the model's parameters stay bf16: copy the masters into them "
                                 "(p.copy_(master)), do not replace them")


def _replayed(name, spec, seed, got, masters):
    """The first mistake whose replay gives the candidate's parameters and masters."""
    with outside_candidate():
        for text, wrong in MASTER_MISTAKES.items():
            _, wrapper, history = _master_run(wrong, name, *spec[1:], seed)
            same = all(torch.equal(a, b) for e, g in zip(history, got) for a, b in zip(e, g))
            if same and all(torch.equal(a, b) for a, b in zip(wrapper.master, masters)):
                return text
    return None


# --------------------------------------------------------------------------
# The simulated world the distributed exercises run in
# --------------------------------------------------------------------------


def _expect_world_equal(name, expected, got, what, step=None):
    """Every rank's tensors bit for bit; the first difference reported with its rank."""
    for rank, (e_rank, g_rank) in enumerate(zip(expected, got)):
        for i, (e, g) in enumerate(zip(e_rank, g_rank)):
            if e is None or g is None:
                if (e is None) != (g is None):
                    raise Mismatch(name, e, g, step=step, detail=f"rank {rank}, {what} {i}")
                continue
            expect_close(name, e, g, what=f"rank {rank}, {what} {i}", step=step, rtol=0, atol=0)


# --------------------------------------------------------------------------
# 13.3 Gradient all-reduce by hand
# --------------------------------------------------------------------------


def _grads_run(fn, world_size, seed, dtype, none=(1,)):
    """Each rank: the same parameters, its own gradients; fn(params, dist) on every rank.
    Returns [rank: (params after, grads after, the same .grad tensors?)]."""
    shapes = ((3, 4), (4,), (2, 3))
    start = _tensors(shapes, seed, dtype)

    def rank_fn(comm):
        rank = comm.get_rank()
        params = [s.clone().requires_grad_() for s in start]
        for i, (p, g) in enumerate(zip(params, _tensors(shapes, seed + 1 + rank, dtype))):
            p.grad = None if i in none else g
        before = [p.grad for p in params]
        fn(params, comm)
        return ([p.detach().clone() for p in params],
                [None if p.grad is None else p.grad.clone() for p in params],
                all(p.grad is b for p, b in zip(params, before)))

    return SimulatedWorld(world_size).run(rank_fn)


def _grad_average_wrong(*, no_division=False, params_instead=False, by_params=False):
    def wrong(params, comm):
        for p in params:
            if p.grad is None:
                continue
            target = p.data if params_instead else p.grad
            comm.all_reduce(target, op=comm.ReduceOp.SUM)
            if not no_division:
                target /= len(params) if by_params else comm.get_world_size()
    return wrong


GRAD_MISTAKES = {
    "you summed the gradients and did not divide: each rank's loss is a mean over its own "
    "samples, so the full batch's gradient is the mean, sum / world_size":
        _grad_average_wrong(no_division=True),
    "you all-reduced the parameters, not their gradients: reduce p.grad":
        _grad_average_wrong(params_instead=True),
    "you divided by the number of parameters; divide by the number of ranks, "
    "dist.get_world_size()": _grad_average_wrong(by_params=True),
}


def _grad_cases():
    cases = [("2 ranks, float32, parameter 1 without gradient", 2, 0, torch.float32),
             ("2 ranks, float64", 2, 10, torch.float64),
             ("4 ranks", 4, 20, torch.float32)]
    if hidden_pass():
        cases += [("hidden: 4 ranks, float64", 4, 30, torch.float64),
                  ("hidden: 8 ranks", 8, 40, torch.float32)]
    return cases


@exercise("13.3", "Gradient all-reduce by hand", reference=average_gradients,
          library=[average_gradients], hints=[
    ("Every rank computed gradients on its own part of the batch; afterwards every rank must "
     "hold their mean. One collective per gradient does it: all_reduce, then a division."),
    ("For each p with a gradient: dist.all_reduce(p.grad, op=dist.ReduceOp.SUM) adds the "
     "ranks' gradients in place on every rank; then divide by dist.get_world_size(). Skip "
     "p.grad is None (on every rank alike)."),
    ("for p in params: if p.grad is not None: dist.all_reduce(p.grad, op=dist.ReduceOp.SUM); "
     "p.grad /= dist.get_world_size(). (gloo has no ReduceOp.AVG.)"),
])
def check_average_gradients(candidate):
    seen = []
    cases = _grad_cases()
    for name, world_size, seed, dtype in cases:
        with outside_candidate():
            expected = _grads_run(average_gradients, world_size, seed, dtype)
        with case(name):
            got = _grads_run(candidate, world_size, seed, dtype)
        seen.append((world_size, seed, dtype, got))
        try:
            _expect_world_equal(name, [e[0] for e in expected], [g[0] for g in got], "parameter")
            _expect_world_equal(name, [e[1] for e in expected], [g[1] for g in got], "gradient")
        except Mismatch as mismatch:
            with outside_candidate():
                mismatch.cause = _grad_replay(seen)
            raise
        if not all(g[2] for g in got):
            raise Mismatch(name, "the same .grad tensors, averaged in place", "new .grad tensors",
                           cause="average into p.grad itself (all_reduce works in place; then "
                                 "p.grad /= world_size): DDP and the optimizer hold those tensors")
    return (f"{len(cases)} cases, 2 and 4 ranks in a simulated world: every rank's gradients "
            "equal the mean of all ranks', in place, bit for bit; parameters untouched")


def _grad_replay(seen):
    for text, wrong in GRAD_MISTAKES.items():
        try:
            if all(_same_world(_grads_run(wrong, ws, seed, dtype), got)
                   for ws, seed, dtype, got in seen):
                return text
        except Exception:  # noqa: BLE001, S112 (a mistake that crashes reproduces nothing)
            continue
    return None


def _same_world(a, b):
    return all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
               for ra, rb in zip(a, b) for part in (0, 1) for x, y in zip(ra[part], rb[part]))


# --------------------------------------------------------------------------
# 13.4 Which rank owns which parameter
# --------------------------------------------------------------------------


def _partition_wrong(*, no_sort=False, ascending=False, round_robin=False, ties_last=False,
                     by_count=False):
    def wrong(sizes, world_size):
        if round_robin:
            return [i % world_size for i in range(len(sizes))]
        order = list(range(len(sizes)))
        if not no_sort:
            order.sort(key=lambda i: sizes[i] if ascending else -sizes[i])
        owners, load = [0] * len(sizes), [0] * world_size
        for i in order:
            least = min(load)
            rank = max(r for r in range(world_size) if load[r] == least) if ties_last \
                else load.index(least)
            owners[i] = rank
            load[rank] += 1 if by_count else sizes[i]
        return owners
    return wrong


PARTITION_MISTAKES = {
    "you assigned the parameters in their own order; torch takes them largest first "
    "(sorted by size, descending)": _partition_wrong(no_sort=True),
    "you sorted smallest first; torch takes the largest first": _partition_wrong(ascending=True),
    "round robin (i % world_size) ignores the sizes: give each parameter, largest first, to "
    "the rank with the fewest elements so far": _partition_wrong(round_robin=True),
    "on a tie the lowest rank wins (load.index(min(load)))": _partition_wrong(ties_last=True),
    "you balanced the number of parameters; balance their sizes (elements)":
        _partition_wrong(by_count=True),
}


def _partition_cases():
    cases = {  # the first case tells every mistake below from the others
        "sizes [7, 1, 5, 9, 8], 3 ranks": ([7, 1, 5, 9, 8], 3),
        "sizes [10, 40, 30, 20], 2 ranks": ([10, 40, 30, 20], 2),
        "equal sizes [5, 5, 5, 5, 5], 2 ranks": ([5, 5, 5, 5, 5], 2),
        "the MLP's [4096, 64, 640, 10], 2 ranks": ([4096, 64, 640, 10], 2),
        "[100, 1, 1, 1], 3 ranks": ([100, 1, 1, 1], 3),
        "[3, 9, 9, 2, 7, 7, 1], 3 ranks": ([3, 9, 9, 2, 7, 7, 1], 3),
        "more ranks than parameters: [7, 3], 4 ranks": ([7, 3], 4),
    }
    if hidden_pass():
        generator = torch.Generator().manual_seed(13)
        for n, world_size in ((9, 2), (12, 3), (20, 5)):
            sizes = torch.randint(1, 50, (n,), generator=generator).tolist()
            cases[f"hidden: {n} random sizes, {world_size} ranks"] = (sizes, world_size)
    return cases


@exercise("13.4", "Which rank owns which parameter", reference=partition,
          library=[partition, TorchZeRO, ZeroRedundancyOptimizer], hints=[
    ("Greedy: go through the parameters from the largest to the smallest and give each to the "
     "rank that owns the fewest elements so far. Return one owner rank per parameter, in the "
     "parameters' own order."),
    ("order = sorted(range(len(sizes)), key=lambda i: -sizes[i]) (a stable sort: equal sizes "
     "keep their order); load = [0] * world_size; on a tie, the lowest rank."),
    ("owners = [0] * len(sizes); for i in order: rank = load.index(min(load)); owners[i] = rank; "
     "load[rank] += sizes[i]; return owners."),
])
def check_partition(candidate):
    return compare_function(candidate, partition, _partition_cases(), mistakes=PARTITION_MISTAKES,
                            what="owner ranks")


# --------------------------------------------------------------------------
# 13.5 ZeRO-1
# --------------------------------------------------------------------------


class ZeRO1:
    """The notebook's ZeRO-1 wrapper: this rank's optimizer over the parameters it owns,
    then every parameter broadcast from its owner (helpers.distributed.optim, one group)."""

    def __init__(self, params, optimizer_class, comm=torch.distributed, **defaults):
        self.params, self.comm = list(params), comm
        self.owners = partition([p.numel() for p in self.params], comm.get_world_size())
        mine = [p for p, owner in zip(self.params, self.owners) if owner == comm.get_rank()]
        self.optim = optimizer_class(mine, **defaults)

    @torch.no_grad()
    def step(self):
        self.optim.step()
        for p, owner in zip(self.params, self.owners):
            self.comm.broadcast(p, src=owner)


class _ZeRO1(ZeRO1):
    """ZeRO1 with class attributes that switch one mistake on."""

    no_broadcast = broadcast_first = from_rank_0 = False

    @torch.no_grad()
    def step(self):
        if not self.broadcast_first:
            self.optim.step()
        if not self.no_broadcast:
            for p, owner in zip(self.params, self.owners):
                self.comm.broadcast(p, src=0 if self.from_rank_0 else owner)
        if self.broadcast_first:
            self.optim.step()


ZERO_MISTAKES = {
    "no parameter is sent: each rank updates only its own shard, so the others' parameters "
    "stay where they were; broadcast every parameter from its owner after the step":
        _switches(_ZeRO1, no_broadcast=True),
    "you broadcast before stepping: the parameters sent are last step's; step, then broadcast":
        _switches(_ZeRO1, broadcast_first=True),
    "every parameter is broadcast from rank 0, but rank 0 only updated its own shard: "
    "broadcast each parameter from its owner (src=owner)": _switches(_ZeRO1, from_rank_0=True),
}

# (name, world size, optimizer class, settings, steps, seed)
ZERO_CASES = [
    ("2 ranks, Adam lr 0.01", 2, torch.optim.Adam, {"lr": 0.01}, 6, 0),
    ("3 ranks, SGD momentum 0.9, weight decay", 3, torch.optim.SGD,
     {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}, 6, 1),
    ("2 ranks, AdamW, 30 steps, lr halved before step 15", 2, torch.optim.AdamW,
     {"lr": 0.003, "betas": (0.8, 0.9), "weight_decay": 0.1}, 30, 2),
]
_LR_CHANGE = 15  # before this step, every run halves its optimizer's lr (as a scheduler would)
_ZERO_SHAPES = ((6, 5), (5,), (4, 6), (4,), (3, 4), (3,))


def _zero_run(cls, world_size, optimizer_class, settings, steps, seed):
    """Every rank: the wrapper over the same parameters, the same (already averaged) gradients.
    Returns [rank: ([step: parameters], the wrapper's state keys per parameter)]."""
    start = _tensors(_ZERO_SHAPES, seed)
    grads = [_tensors(_ZERO_SHAPES, seed + 1 + k) for k in range(steps)]

    def rank_fn(comm):
        params = [s.clone().requires_grad_() for s in start]
        wrapper = cls(params, optimizer_class, comm=comm, **settings)
        history = []
        for k, step_grads in enumerate(grads, start=1):
            if k == _LR_CHANGE:
                for group in wrapper.optim.param_groups:
                    group["lr"] /= 2
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            wrapper.step()
            history.append([p.detach().clone() for p in params])
        local = getattr(wrapper, "optim", None)
        state = getattr(local, "state", None)
        held = None if state is None else [i for i, p in enumerate(params) if state.get(p)]
        return history, held

    return SimulatedWorld(world_size).run(rank_fn)


def _unsharded(optimizer_class, settings, steps, seed):
    params = [s.clone().requires_grad_() for s in _tensors(_ZERO_SHAPES, seed)]
    optimizer = optimizer_class(params, **settings)
    history = []
    for k in range(steps):
        if k + 1 == _LR_CHANGE:
            for group in optimizer.param_groups:
                group["lr"] /= 2
        for p, g in zip(params, _tensors(_ZERO_SHAPES, seed + 1 + k)):
            p.grad = g
        optimizer.step()
        history.append([p.detach().clone() for p in params])
    return history


@exercise("13.5", "ZeRO-1: sharded state, gathered parameters", reference=ZeRO1,
          library=[ZeRO1, TorchZeRO, ZeroRedundancyOptimizer], hints=[
    ("__init__: owners = your assign_shards of the parameters' sizes over "
     "comm.get_world_size() ranks; self.optim = optimizer_class(the parameters this rank owns, "
     "**defaults). Only they get state on this rank."),
    ("step(): self.optim.step() updates this rank's shard (the gradients are already averaged "
     "on every rank); then every rank needs every updated parameter: for each parameter, "
     "comm.broadcast(p, src=its owner), all ranks in the same order."),
    ("mine = [p for p, o in zip(self.params, self.owners) if o == comm.get_rank()]; "
     "step: self.optim.step(); for p, o in zip(self.params, self.owners): "
     "comm.broadcast(p, src=o) (under torch.no_grad())."),
])
def check_zero1(candidate):
    cases = list(ZERO_CASES)
    if hidden_pass():
        cases += [("hidden: 4 ranks, Adam, amsgrad", 4, torch.optim.Adam,
                   {"lr": 0.02, "amsgrad": True}, 8, 5),
                  ("hidden: 3 ranks, AdamW, 100 steps", 3, torch.optim.AdamW, {"lr": 0.01}, 100, 6)]
    seen = []
    for name, world_size, optimizer_class, settings, steps, seed in cases:
        with outside_candidate():
            expected = _unsharded(optimizer_class, settings, steps, seed)
        with case(name):
            got = _zero_run(candidate, world_size, optimizer_class, settings, steps, seed)
        seen.append(((world_size, optimizer_class, settings, steps, seed), got))
        for k in range(steps):
            try:
                _expect_world_equal(name, [expected[k]] * world_size, [g[0][k] for g in got],
                                    "parameter", step=k + 1)
            except Mismatch as mismatch:
                with outside_candidate():
                    mismatch.cause = _zero_replay(seen)
                raise
        owners = partition([torch.Size(s).numel() for s in _ZERO_SHAPES], world_size)
        for rank, (_, held) in enumerate(got):
            mine = [i for i, o in enumerate(owners) if o == rank]
            if held is None:
                raise Mismatch(name, "self.optim, this rank's optimizer", "no self.optim.state",
                               cause="keep the local optimizer in self.optim (torch's name)")
            if held != mine:
                raise Mismatch(name, f"state for parameters {mine}", f"state for parameters {held}",
                               detail=f"rank {rank}'s optimizer state",
                               cause="each rank keeps state only for the parameters it owns "
                                     "(owners from assign_shards of the sizes): that is the "
                                     "memory ZeRO-1 saves")
    return (f"{len(cases)} cases in a simulated world (2 and 3 ranks; Adam, SGD with momentum, "
            "AdamW for 30 steps with an lr change through self.optim): every rank's parameters "
            "equal the unsharded optimizer's bit for bit after every step; each rank holds state "
            "only for the parameters it owns")


def _zero_replay(seen):
    for text, wrong in ZERO_MISTAKES.items():
        try:
            if all(_same_histories(_zero_run(wrong, *spec), got) for spec, got in seen):
                return text
        except Exception:  # noqa: BLE001, S112 (a mistake that crashes reproduces nothing)
            continue
    return None


def _same_histories(a, b):
    return all(torch.equal(x, y) for ra, rb in zip(a, b) for sa, sb in zip(ra[0], rb[0])
               for x, y in zip(sa, sb))

