"""Notebook 12, fast optimizers: the bytes of a step, multi-tensor SGD and Adam, a flat buffer
and an optimizer that steps it.

12.1 is a function of an optimizer, compared with ``helpers.bench.step_traffic`` on
optimizers built fresh for every case. 12.2, 12.3 and 12.5 are optimizers, stepped next
to ``helpers.optim`` with ``compare_optimizer`` (every hyperparameter differing between
groups, lr changes, a new group, a state_dict round trip, 150 steps) and then counted:
the aten calls of one step, under a ``TorchDispatchMode``, must not grow with the number
of parameters (reading a step count with ``.item()`` is not a kernel and is not counted),
and torch's fused kernels are refused. 12.4 is checked for what it promises: the same
tensor objects, values and shapes, now views of the returned buffer, in order. A cause
is named only when its replay gives the candidate's numbers on every case so far.
"""

import torch
from torch.optim import adam as _torch_adam
from torch.optim import sgd as _torch_sgd
from torch.utils._python_dispatch import TorchDispatchMode

import helpers.optim
from helpers import bench
from helpers.checking import Mismatch, case, exercise, hidden_pass, outside_candidate
from helpers.checking_tools import OptimCase, compare_optimizer, expect_close
from helpers.optim import adam as _adam
from helpers.optim import flat as _flat
from helpers.optim import sgd as _sgd

# --------------------------------------------------------------------------
# Counting the aten calls of a step
# --------------------------------------------------------------------------


class AtenCalls(TorchDispatchMode):
    """Records the name of every aten operator called while it is active."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def kernel_calls(calls):
    """The aten calls that run a kernel: all but ``.item()`` (aten._local_scalar_dense)."""
    return [c for c in calls if c.startswith("aten.") and c != "aten._local_scalar_dense"]


def _calls_of_a_step(cls, n, settings, label):
    """The kernel calls of the third step of ``cls`` on n parameters (the state exists)."""
    generator = torch.Generator().manual_seed(n)
    params = [torch.randn(4, 3, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(n)]
    mode = AtenCalls()
    with case(f"{label}, {n} parameters"):
        optimizer = cls(params, **settings)
        for k in range(3):
            for p in params:
                p.grad = torch.randn(4, 3, generator=generator, dtype=torch.float64)
            if k < 2:
                optimizer.step()
            else:
                with mode:
                    optimizer.step()
    return kernel_calls(mode.calls)


def _expect_few_calls(cls, settings, label, fused, kind):
    """As many kernel calls per step with 24 parameters as with 3, and none of torch's fused ones."""
    few, many = (_calls_of_a_step(cls, n, settings, label) for n in (3, 24))
    borrowed = sorted({c for c in few + many if c in fused})
    if borrowed:
        raise Mismatch(label, detail=f"your step calls {borrowed[0]}",
                       cause=f"that is torch's fused {kind} kernel doing "
                             "the work — the exercise is to write the update with torch._foreach_* calls")
    if len(many) > len(few):
        grown = max(set(many), key=lambda c: many.count(c) - few.count(c))
        raise Mismatch(
            label, f"as many kernel calls with 24 parameters as with 3 ({len(few)})",
            f"{len(many)} calls with 24 parameters, {len(few)} with 3",
            detail=f"{grown} is called {few.count(grown)} times with 3 parameters, {many.count(grown)} "
                   "with 24",
            cause="a Python loop over the parameters does tensor math: do it for the whole list "
                  "with one torch._foreach_* call")
    return f"one step is {len(few)} kernel calls with 3 parameters and with 24"


def _with_foreach(cls):
    """``cls`` with foreach=True: the library's multi-tensor step, which use() hands on."""
    def __init__(self, params, *args, **kwargs):
        cls.__init__(self, params, *args, foreach=True, **kwargs)
    return type(f"Foreach{cls.__name__}", (cls,), {"__init__": __init__, "__doc__": cls.__doc__})


# --------------------------------------------------------------------------
# 12.1 The bytes of a step
# --------------------------------------------------------------------------


def step_traffic(optimizer):
    """(bytes read, bytes written) by the optimizer's next step, each tensor moved once."""
    read = written = 0
    for group in optimizer.param_groups:
        if "momentum" in group:
            state_tensors = 1 if group["momentum"] else 0
        else:
            state_tensors = 3 if group["amsgrad"] else 2
        for p in group["params"]:
            if p.grad is None:
                continue
            size = p.numel() * p.element_size()
            started = len(optimizer.state.get(p, {})) > 0
            read += (2 + (state_tensors if started else 0)) * size
            written += (1 + state_tensors) * size
    return read, written


def _traffic_wrong(*, elements=False, four_bytes=False, grad_written=False, none_counted=False,
                   state_always=False, defaults=False, no_amsgrad=False, momentum_always=False):
    def wrong(optimizer):
        read = written = 0
        for group in optimizer.param_groups:
            settings = optimizer.defaults if defaults else group
            if "momentum" in settings:
                state_tensors = 1 if settings["momentum"] or momentum_always else 0
            else:
                state_tensors = 3 if settings["amsgrad"] and not no_amsgrad else 2
            for p in group["params"]:
                if p.grad is None and not none_counted:
                    continue
                size = p.numel() * (1 if elements else 4 if four_bytes else p.element_size())
                started = state_always or len(optimizer.state.get(p, {})) > 0
                read += (2 + (state_tensors if started else 0)) * size
                written += (1 + state_tensors + (1 if grad_written else 0)) * size
        return read, written
    return wrong


TRAFFIC_MISTAKES = {
    "you counted numbers, not bytes: multiply each parameter's p.numel() by p.element_size()":
        _traffic_wrong(elements=True),
    "you counted 4 bytes per number for every dtype: use p.element_size() (8 for float64, 2 for "
    "bfloat16)": _traffic_wrong(four_bytes=True),
    "you counted the gradient as written; the step only reads it": _traffic_wrong(grad_written=True),
    "you counted parameters whose .grad is None; the step skips them and moves none of their bytes":
        _traffic_wrong(none_counted=True),
    "you counted the state as read on a parameter's first step; before it, optimizer.state[p] is "
    "empty: the state is created (written) but there is nothing to read":
        _traffic_wrong(state_always=True),
    "you left out amsgrad's third state tensor, v̂ (read and written like m and v)":
        _traffic_wrong(no_amsgrad=True),
    "you read the hyperparameters from optimizer.defaults; each param group has its own "
    "(group['momentum'], group['amsgrad'])": _traffic_wrong(defaults=True),
    "plain SGD (momentum 0) has no momentum buffer: it reads p and g and writes p":
        _traffic_wrong(momentum_always=True),
}


def _traffic_case(cls, groups, *, steps=0, none=(), seed=0, **defaults):
    """An optimizer on param groups given as lists of (shape, dtype), with gradients, after
    ``steps`` steps; the parameters numbered in ``none`` then have .grad None."""
    generator = torch.Generator().manual_seed(seed)
    spec, params = [], []
    for shapes, settings in groups:
        ps = [torch.randn(s, generator=generator).to(d).requires_grad_() for s, d in shapes]
        params += ps
        spec.append({"params": ps, **settings})
    optimizer = cls(spec, **defaults)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator).to(p.dtype)
        optimizer.step()
    for i, p in enumerate(params):
        p.grad = None if i in none else torch.randn(p.shape, generator=generator).to(p.dtype)
    return optimizer


F32, F64, BF16 = torch.float32, torch.float64, torch.bfloat16


def _traffic_cases():
    matrix, vector = ((3, 4), F32), ((5,), F32)
    cases = {
        "SGD momentum, after 2 steps": (torch.optim.SGD, [([matrix, vector], {})],
                                        {"lr": 0.1, "momentum": 0.9, "steps": 2}),
        "SGD momentum, before step 1": (torch.optim.SGD, [([matrix, vector], {})],
                                        {"lr": 0.1, "momentum": 0.9}),
        "SGD, one float32 group": (torch.optim.SGD, [([matrix, vector], {})], {"lr": 0.1}),
        "Adam, float64, after 1 step": (helpers.optim.Adam, [([((4, 2), F64), ((3,), F64)], {})],
                                        {"steps": 1}),
        "SGD, momentum in one group only, a .grad None, after 1 step": (
            helpers.optim.SGD, [([matrix, vector], {"momentum": 0.9}), ([((6,), F64)], {})],
            {"lr": 0.1, "steps": 1, "none": (1,)}),
        "Adam before step 1, a group with amsgrad": (
            torch.optim.Adam, [([matrix], {}), ([vector], {"amsgrad": True})], {}),
        "AdamW, groups with and without amsgrad, after 3 steps": (
            torch.optim.AdamW, [([matrix], {"amsgrad": True}), ([vector, ((2, 2), F64)], {})],
            {"steps": 3}),
        "Adam, bfloat16 and float32 groups, weight decay, after 2 steps": (
            torch.optim.Adam, [([((4, 4), BF16)], {"weight_decay": 0.1}), ([matrix], {"maximize": True})],
            {"steps": 2}),
    }
    if hidden_pass():
        cases["hidden: AdamW amsgrad, three dtypes, a .grad None"] = (
            torch.optim.AdamW, [([((7, 3), F64), ((2,), BF16)], {"amsgrad": True}), ([((9,), F32)], {})],
            {"steps": 2, "none": (1,), "seed": 5})
        cases["hidden: SGD Nesterov before and after"] = (
            torch.optim.SGD, [([((8, 8), F32)], {"momentum": 0.5, "nesterov": True}),
                              ([((3,), F64)], {"momentum": 0.0})], {"lr": 0.1, "steps": 1, "seed": 6})
    return cases


@exercise("12.1", "The bytes of a step", reference=step_traffic,
          library=[step_traffic, bench.step_traffic], hints=[
    ("Per parameter with a gradient, in bytes (p.numel() * p.element_size()): p and g are read, p is "
     "written; each state tensor (SGD's momentum buffer; Adam's m and v, and v̂ with amsgrad) is "
     "written, and read too once it exists."),
    ("Which optimizer: a group with a 'momentum' key is SGD (momentum 0: no buffer), otherwise Adam "
     "(group['amsgrad']). A parameter's state exists when optimizer.state.get(p) is non-empty."),
    ("for group in optimizer.param_groups: n_state = (1 if group['momentum'] else 0) if 'momentum' "
     "in group else (3 if group['amsgrad'] else 2); for p with a grad: size = p.numel() * "
     "p.element_size(); read += (2 + (n_state if optimizer.state.get(p) else 0)) * size; "
     "written += (1 + n_state) * size."),
])
def check_step_traffic(candidate):
    seen = []
    cases = _traffic_cases()
    for name, (cls, groups, options) in cases.items():
        options = dict(options)
        build = {k: options.pop(k) for k in ("steps", "none", "seed") if k in options}
        with outside_candidate():
            optimizer = _traffic_case(cls, groups, **build, **options)
            expected = step_traffic(optimizer)
        with case(name):
            got = candidate(optimizer)
        seen.append((optimizer, got))
        if isinstance(got, list):
            got = tuple(got)
        try:
            expect_close(name, expected, got, what="(bytes read, bytes written)")
        except Mismatch as mismatch:
            if mismatch.cause is None:
                mismatch.cause = next((text for text, wrong in TRAFFIC_MISTAKES.items()
                                       if all(_same(wrong(o), g) for o, g in seen)), None)
            raise
    return f"{len(cases)} optimizers: " + "; ".join(cases)


def _same(a, b):
    try:
        return tuple(a) == tuple(b)
    except TypeError:
        return False


# --------------------------------------------------------------------------
# 12.2 Multi-tensor SGD with momentum
# --------------------------------------------------------------------------


class ForeachSGD(torch.optim.Optimizer):
    """SGD (momentum, dampening, Nesterov, L2 decay, maximize) with torch._foreach_* calls."""

    nesterov_on_buffer = dampened_first = decay_after_momentum = plain_momentum = False

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, mu, tau, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
            grads = [p.grad for p in params]
            if group["maximize"]:
                grads = torch._foreach_neg(grads)
            if wd != 0 and not self.decay_after_momentum:
                grads = torch._foreach_add(grads, params, alpha=wd)
            if mu != 0:
                states = [self.state[p] for p in params]
                buffers = [s.get("momentum_buffer") for s in states]
                old = [i for i, b in enumerate(buffers) if b is not None]
                if old:
                    torch._foreach_mul_([buffers[i] for i in old], mu)
                    torch._foreach_add_([buffers[i] for i in old], [grads[i] for i in old],
                                        alpha=1 if self.plain_momentum else 1 - tau)
                for i, s in enumerate(states):  # a parameter's first step: b ← g
                    if buffers[i] is None:
                        g = grads[i]
                        first = g.mul(1 - tau) if self.dampened_first else g.clone()
                        s["momentum_buffer"] = buffers[i] = first
                if group["nesterov"]:
                    base = buffers if self.nesterov_on_buffer else grads
                    grads = torch._foreach_add(base, buffers, alpha=mu)
                else:
                    grads = buffers
            if wd != 0 and self.decay_after_momentum:
                grads = torch._foreach_add(grads, params, alpha=wd)
            torch._foreach_add_(params, grads, alpha=-lr)
        return loss


def _sgd_switch(**switches):
    name = "ForeachSGD(" + ", ".join(switches) + ")"
    return type(name, (ForeachSGD,), switches)


SGD_MISTAKES = {
    "on a parameter's first step the buffer is the gradient itself, b ← g (torch does not dampen "
    "it); you started from (1 − τ)·g": _sgd_switch(dampened_first=True),
    "your momentum ignores the dampening: b ← μ·b + (1 − τ)·g": _sgd_switch(plain_momentum=True),
    "you added the weight decay after the momentum; it goes into the gradient first, g ← g + λ·θ":
        _sgd_switch(decay_after_momentum=True),
    "Nesterov's update is g + μ·b (the gradient plus μ times the new buffer), not b + μ·b":
        _sgd_switch(nesterov_on_buffer=True),
}

SGD = {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01, "maximize": False}
SGD_CASES = [
    OptimCase("momentum 0.9", lr=0.1, momentum=0.9),
    OptimCase("dampening, weight decay, maximize, a .grad None", lr=0.05, momentum=0.8, dampening=0.3,
              weight_decay=0.1, maximize=True, grad_none={1: {1, 4}, 3: {2}}),
    OptimCase("Nesterov", lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05),
    OptimCase.per_group("every setting differs between groups", SGD,
                        [{**SGD, "lr": 0.02, "momentum": 0.5, "dampening": 0.0, "weight_decay": 0.0},
                         {**SGD, "momentum": 0.0, "weight_decay": 0.1, "maximize": True}],
                        {**SGD, "lr": 0.01, "dampening": 0.4, "weight_decay": 0.2}),
    OptimCase.long_run("150 steps", lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01,
                       dtype=torch.float64),
]
FUSED_SGD = {"aten._fused_sgd_"}
SGD_LIBRARY = [torch.optim.SGD, _torch_sgd.sgd, _torch_sgd._multi_tensor_sgd,
               helpers.optim.SGD, _sgd._multi_tensor_sgd, _flat.FlatSGD]


@exercise("12.2", "Multi-tensor SGD with momentum", reference=_with_foreach(helpers.optim.SGD),
          library=SGD_LIBRARY,
          hints=[
    ("Work on lists: params = the group's parameters with a gradient, grads = their .grad. "
     "g ← −g (maximize) is torch._foreach_neg(grads); g ← g + λ·θ is torch._foreach_add(grads, "
     "params, alpha=λ) — both new lists, the caller's .grad stays as it is."),
    ("Momentum: a parameter without state['momentum_buffer'] gets g.clone() (its first step, a loop "
     "is fine there); the others: torch._foreach_mul_(bufs, μ); torch._foreach_add_(bufs, grads, "
     "alpha=1 − τ). The update is bufs, or torch._foreach_add(grads, bufs, alpha=μ) with Nesterov."),
    ("Last: torch._foreach_add_(params, update, alpha=-group['lr']). Every group reads its own "
     "group[...] values; no tensor math inside a `for p in params` loop once the buffers exist."),
])
def check_foreach_sgd(candidate):
    verified = compare_optimizer(candidate, helpers.optim.SGD, SGD_CASES, steps=8, mistakes=SGD_MISTAKES)
    calls = _expect_few_calls(candidate, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1,
                                          "maximize": True}, "kernel calls of a step", FUSED_SGD, "SGD")
    return f"{verified}; {calls}"


# --------------------------------------------------------------------------
# 12.3 Multi-tensor Adam
# --------------------------------------------------------------------------


class ForeachAdam(torch.optim.Optimizer):
    """Adam (L2 or decoupled decay, amsgrad, maximize) with torch._foreach_* calls."""

    one_step_count = no_sqrt_correction = eps_inside = decay_swapped = ams_unused = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "amsgrad": amsgrad, "maximize": maximize,
                                  "decoupled_weight_decay": decoupled_weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in params:  # a parameter's first step: its state
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
            states = [self.state[p] for p in params]
            steps = [s["step"] for s in states]
            m = [s["exp_avg"] for s in states]
            v = [s["exp_avg_sq"] for s in states]
            torch._foreach_add_(steps, 1)
            grads = [p.grad for p in params]
            if group["maximize"]:
                grads = torch._foreach_neg(grads)
            if wd != 0:
                if group["decoupled_weight_decay"] != self.decay_swapped:
                    torch._foreach_mul_(params, 1 - lr * wd)
                else:
                    grads = torch._foreach_add(grads, params, alpha=wd)
            torch._foreach_lerp_(m, grads, 1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
            if group["amsgrad"]:
                v_max = [s["max_exp_avg_sq"] for s in states]
                torch._foreach_maximum_(v_max, v)
                if not self.ams_unused:
                    v = v_max
            counts = [t.item() for t in steps]
            if self.one_step_count:
                counts = [max(counts)] * len(counts)
            if self.eps_inside:
                denom = torch._foreach_add(v, group["eps"])
                denom = torch._foreach_sqrt(denom)
            else:
                denom = torch._foreach_sqrt(v)
            corrections = [1 - beta2**t if self.no_sqrt_correction else (1 - beta2**t) ** 0.5 for t in counts]
            torch._foreach_div_(denom, corrections)
            if not self.eps_inside:
                torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(params, m, denom, [-lr / (1 - beta1**t) for t in counts])
        return loss


def _adam_switch(**switches):
    name = "ForeachAdam(" + ", ".join(switches) + ")"
    return type(name, (ForeachAdam,), switches)


ADAM_MISTAKES = {
    "each parameter has its own step count (state['step']): one that had a .grad None on some "
    "steps has taken fewer steps, and its bias corrections use its own t":
        _adam_switch(one_step_count=True),
    "the second moment's bias correction is a square root: √v / √(1 − β₂ᵗ)":
        _adam_switch(no_sqrt_correction=True),
    "ε is added after the square root: √v̂ + ε, not √(v + ε)": _adam_switch(eps_inside=True),
    "the two weight decays are swapped: decoupled_weight_decay=True shrinks θ ← θ·(1 − lr·λ) "
    "before the update; otherwise λ·θ is added to the gradient (an L2 penalty, which then goes "
    "through m and v)": _adam_switch(decay_swapped=True),
    "with amsgrad the denominator uses v̂ = max(v̂, v), not v": _adam_switch(ams_unused=True),
}

ADAM = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1, "amsgrad": False,
        "maximize": False, "decoupled_weight_decay": False}
ADAM_CASES = [
    OptimCase("betas (0.5, 0.9), eps 1e-3, a .grad None", lr=0.02, betas=(0.5, 0.9), eps=1e-3,
              grad_none={1: {1, 2, 5}, 2: {3}}),
    OptimCase("amsgrad, L2 weight decay, maximize", lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True),
    OptimCase.per_group("every setting differs between groups", ADAM,
                        [{**ADAM, "lr": 0.02, "eps": 1e-6, "amsgrad": True, "decoupled_weight_decay": True},
                         {**ADAM, "betas": (0.5, 0.9), "weight_decay": 0.0, "maximize": True}],
                        {**ADAM, "lr": 0.005, "weight_decay": 0.3, "amsgrad": True}),
    OptimCase.long_run("150 steps", lr=0.003, betas=(0.8, 0.95), weight_decay=0.1, amsgrad=True,
                       dtype=torch.float64),
]
FUSED_ADAM = {"aten._fused_adam_", "aten._fused_adamw_"}
ADAM_LIBRARY = [torch.optim.Adam, torch.optim.AdamW, _torch_adam.adam, _torch_adam._multi_tensor_adam,
                _torch_adam._fused_adam, helpers.optim.Adam, helpers.optim.AdamW,
                _adam._multi_tensor_adam, _flat.FlatAdam]


@exercise("12.3", "Multi-tensor Adam", reference=_with_foreach(helpers.optim.Adam), library=ADAM_LIBRARY,
          hints=[
    ("State first, as the loop does: for a parameter with an empty state, state['step'] = "
     "torch.tensor(0.0) and zeros for exp_avg, exp_avg_sq (and max_exp_avg_sq with amsgrad). Then "
     "lists: steps, m, v, grads. torch._foreach_add_(steps, 1) counts the step for all of them."),
    ("The moments: torch._foreach_lerp_(m, grads, 1 − β₁); torch._foreach_mul_(v, β₂); "
     "torch._foreach_addcmul_(v, grads, grads, 1 − β₂); amsgrad: torch._foreach_maximum_(v_max, v) "
     "and use v_max below. Decay: decoupled, torch._foreach_mul_(params, 1 − lr·λ); else add λ·θ to g."),
    ("counts = [t.item() for t in steps] (each parameter's own t); denom = torch._foreach_sqrt(v); "
     "torch._foreach_div_(denom, [(1 − β₂**t)**0.5 for t in counts]); torch._foreach_add_(denom, eps); "
     "torch._foreach_addcdiv_(params, m, denom, [−lr / (1 − β₁**t) for t in counts])."),
])
def check_foreach_adam(candidate):
    verified = compare_optimizer(candidate, helpers.optim.Adam, ADAM_CASES, steps=8, mistakes=ADAM_MISTAKES)
    calls = _expect_few_calls(candidate, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "maximize": True},
                              "kernel calls of a step", FUSED_ADAM, "Adam")
    decoupled = _expect_few_calls(candidate,
                                  {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
                                  "kernel calls of a step, decoupled weight decay", FUSED_ADAM, "Adam")
    return f"{verified}; {calls}; {decoupled.split(' is ')[0]} with decoupled decay too"


# --------------------------------------------------------------------------
# 12.4 One buffer of views
# --------------------------------------------------------------------------


def flatten_(tensors):
    """Copy the tensors into one new 1-d buffer and make each a view into it; return the buffer."""
    return _flat.flatten_(tensors)


def _flatten_cases():
    generator = torch.Generator().manual_seed(12)
    def draw(*shape, dtype=torch.float32, grad=False):
        return torch.randn(shape, generator=generator).to(dtype).requires_grad_(grad)
    cases = {
        "three float32 tensors": [draw(2, 3), draw(4), draw(3, 1, 2)],
        "a model's parameters (requires_grad)": [draw(5, 4, grad=True), draw(5, grad=True),
                                                 draw(1, 5, grad=True), draw(1, grad=True)],
        "a 0-dim tensor and an empty one, float64": [draw(dtype=torch.float64),
                                                     draw(0, 3, dtype=torch.float64),
                                                     draw(2, 2, dtype=torch.float64)],
        "a transposed (non-contiguous) matrix": [draw(3), draw(4, 2).T, draw(2)],
    }
    if hidden_pass():
        cases["hidden: many small tensors, bfloat16"] = [draw(k % 3 + 1, 2, dtype=torch.bfloat16)
                                                          for k in range(9)]
    return cases


def _expect_views(name, tensors, objects, values, flat):
    if not isinstance(flat, torch.Tensor):
        raise Mismatch(name, "the buffer (a tensor)", flat, cause="return the flat buffer")
    numel = sum(v.numel() for v in values)
    if flat.dim() != 1 or flat.numel() != numel or not flat.is_contiguous():
        raise Mismatch(name, f"a contiguous 1-d tensor of {numel} numbers",
                       f"shape {tuple(flat.shape)}" + ("" if flat.is_contiguous() else ", not contiguous"))
    if flat.dtype != values[0].dtype:
        raise Mismatch(name, values[0].dtype, flat.dtype, detail="the buffer's dtype",
                       cause="keep the tensors' dtype (torch.cat of them does)")
    offset = 0
    for i, (t, o, v) in enumerate(zip(tensors, objects, values)):
        if t is not o:
            raise Mismatch(name, detail=f"tensors[{i}] is a new tensor",
                           cause="the list must hold the same tensor objects (a model's parameters); "
                                 "rebind their data with t.data = view instead of replacing them")
        if t.shape != v.shape:
            raise Mismatch(name, tuple(v.shape), tuple(t.shape), detail=f"the shape of tensors[{i}]",
                           cause="each view keeps its tensor's shape: flat[a:b].view(t.shape)")
        expect_close(name, v, t.detach(), what=f"tensors[{i}]'s values")
        shares = t.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
        if v.numel() and (not shares or t.storage_offset() != flat.storage_offset() + offset):
            raise Mismatch(name, f"a view of the buffer from element {offset}",
                           "a view at another place" if shares else "a tensor with its own memory",
                           detail=f"tensors[{i}]",
                           cause=None if shares else "copying into a buffer is half of it: set each "
                                 "t.data to its slice of the buffer, in order (offset += t.numel())")
        offset += v.numel()
    with torch.no_grad():
        flat.add_(1)
    if not all(torch.equal(t.detach(), (v + 1).to(v.dtype)) for t, v in zip(tensors, values) if v.numel()):
        raise Mismatch(name, detail="after flat.add_(1), a tensor did not change",
                       cause="every tensor must see writes to the buffer: views, not copies")


@exercise("12.4", "One buffer of views", reference=flatten_, library=[flatten_, _flat.flatten_], hints=[
    ("flat = torch.cat([t.detach().reshape(-1) for t in tensors]) copies everything into one 1-d "
     "buffer, in order. That is half of it: the tensors must become views of it."),
    ("Walk through the tensors with an offset: view = flat[offset:offset + t.numel()].view(t.shape); "
     "t.data = view (the tensor object stays, a model keeps its parameters); offset += t.numel()."),
])
def check_flatten(candidate):
    cases = _flatten_cases()
    for name, tensors in cases.items():
        objects, values = list(tensors), [t.detach().clone() for t in tensors]
        with case(name):
            flat = candidate(tensors)
        with outside_candidate():
            _expect_views(name, tensors, objects, values, flat)
    return (f"{len(cases)} cases ({'; '.join(cases)}): the same tensor objects, shapes and values, "
            "each a view of the buffer at its place, writes to the buffer seen by every tensor")


# --------------------------------------------------------------------------
# 12.5 A flat Adam
# --------------------------------------------------------------------------


class FlatAdam(torch.optim.Optimizer):
    """Adam on one flat buffer per param group: parameters, gradients and state are views into it."""

    stale_grads = fresh_state = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *, maximize=False):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "maximize": maximize})
        self.flat = {}  # id(group): the group's buffers

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self.flat = {}  # pack the loaded state on the next step

    def pack(self, group):
        """The group's buffers: "param", "grad" (and "grads", its views), "exp_avg",
        "exp_avg_sq" and the group's one "step" count; made on its first step."""
        if id(group) in self.flat:
            return self.flat[id(group)]
        params = group["params"]
        loaded = bool(self.state.get(params[0])) and not self.fresh_state
        buffers = {"param": flatten_(params)}
        grads = [torch.zeros_like(p) for p in params]
        buffers["grad"], buffers["grads"] = flatten_(grads), grads
        for key in ("exp_avg", "exp_avg_sq"):
            tensors = [self.state[p][key] if loaded else torch.zeros_like(p) for p in params]
            buffers[key] = flatten_(tensors)
            for p, t in zip(params, tensors):
                self.state[p][key] = t
        buffers["step"] = self.state[params[0]]["step"] if loaded else torch.tensor(0.0)
        for p in params:
            self.state[p]["step"] = buffers["step"]
        self.flat[id(group)] = buffers
        return buffers

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if any(p.grad is None for p in group["params"]):
                continue  # (this exercise's groups have a gradient for all their parameters or none)
            b = self.pack(group)
            if not self.stale_grads or not b["step"]:
                torch._foreach_copy_(b["grads"], [p.grad for p in group["params"]])
            for p, view in zip(group["params"], b["grads"]):
                p.grad = view
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            b["step"] += 1
            t = b["step"].item()
            g = -b["grad"] if group["maximize"] else b["grad"]
            if wd != 0:
                g = g.add(b["param"], alpha=wd)
            b["exp_avg"].lerp_(g, 1 - beta1)
            b["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (b["exp_avg_sq"].sqrt() / (1 - beta2**t) ** 0.5).add_(group["eps"])
            b["param"].addcdiv_(b["exp_avg"], denom, value=-lr / (1 - beta1**t))
        return loss


def _flat_switch(**switches):
    return type("FlatAdam(" + ", ".join(switches) + ")", (FlatAdam,), switches)


FLAT_MISTAKES = {
    "you copied the gradients into the buffer only once, when packing: every step must copy each "
    "p.grad that is a new tensor into the buffer (torch._foreach_copy_), or the update uses the "
    "first step's gradients": _flat_switch(stale_grads=True),
    "after load_state_dict your optimizer started from zero moments and step 0: pack the loaded "
    "state (optimizer.state[p]['exp_avg'], …) into the buffers instead":
        _flat_switch(fresh_state=True),
}

FLAT = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1, "maximize": False}
FLAT_CASES = [
    OptimCase("weight decay, maximize, betas (0.5, 0.9)", lr=0.02, weight_decay=0.2, maximize=True,
              betas=(0.5, 0.9)),
    OptimCase.per_group("every setting differs between groups", FLAT,
                        [{**FLAT, "lr": 0.02, "eps": 1e-6, "weight_decay": 0.0},
                         {**FLAT, "betas": (0.5, 0.9), "maximize": True}],
                        {**FLAT, "lr": 0.005, "weight_decay": 0.3}),
    OptimCase.long_run("150 steps", lr=0.003, betas=(0.8, 0.95), weight_decay=0.1, dtype=torch.float64),
]


def _expect_one_buffer(candidate, label):
    """After a step the group's parameters, gradients and moments each live in one buffer."""
    generator = torch.Generator().manual_seed(5)
    params = [torch.randn(s, generator=generator).requires_grad_() for s in ((3, 2), (4,), (2, 2, 2))]
    with case(label):
        optimizer = candidate(params, lr=0.01)
        for _ in range(2):
            for p in params:
                p.grad = torch.randn(p.shape, generator=generator)
            optimizer.step()
    where = lambda t: (t.untyped_storage().data_ptr(), t.storage_offset())  # noqa: E731
    for what, tensors in [("parameters", params), ("gradients", [p.grad for p in params]),
                          *((f"state[p][{k!r}]", [optimizer.state[p][k] for p in params])
                            for k in ("exp_avg", "exp_avg_sq"))]:
        spots = [where(t) for t in tensors]
        offsets = [spots[0][1] + sum(t.numel() for t in tensors[:i]) for i in range(len(tensors))]
        if any(s[0] != spots[0][0] for s in spots) or [s[1] for s in spots] != offsets:
            raise Mismatch(label, f"the {what} as consecutive views of one buffer", "separate tensors",
                           detail="after 2 steps",
                           cause="pack them with flatten_ (12.4) on the first step and keep the views: "
                                 "state[p][key] = view, p.grad = view")
    return "parameters, gradients and moments are consecutive views of one buffer per group"


@exercise("12.5", "A flat Adam", reference=_flat.FlatAdam, library=[_flat.FlatAdamW],
          hints=[
    ("pack(group), once per group: buffers['param'] = flatten_(params); the gradients too (p.grad = "
     "its view); zeros for exp_avg and exp_avg_sq, whose views go into state[p][key]; one "
     "torch.tensor(0.0) step count for the group, the same object in every state[p]['step']."),
    ("step(): for each group with gradients, b = self.pack(group); copy the gradients in with one "
     "torch._foreach_copy_(views, [p.grad ...]) (they may be new tensors); then Adam's update, once, "
     "on the flat tensors b['param'], b['grad'], b['exp_avg'], b['exp_avg_sq']."),
    ("After load_state_dict, self.flat is empty and state[p] holds the loaded tensors: pack() must "
     "flatten_ those (not zeros) and take the loaded step count."),
])
def check_flat_adam(candidate):
    verified = compare_optimizer(candidate, helpers.optim.Adam, FLAT_CASES, steps=8, mistakes=FLAT_MISTAKES)
    buffers = _expect_one_buffer(candidate, "one buffer per group")
    calls = _expect_few_calls(candidate, {"lr": 0.01, "weight_decay": 0.1}, "kernel calls of a step",
                              FUSED_ADAM, "Adam")
    return f"{verified}; {buffers}; {calls}"
