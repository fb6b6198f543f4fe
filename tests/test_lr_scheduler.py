"""helpers.lr_scheduler against torch.optim.lr_scheduler (torch 2.13).

Each case builds the same schedule twice, once with our classes (``H``) and once
with torch's (``T``), steps both for STEPS steps on an optimizer with two param
groups and compares, after construction and after every step, each group's lr,
momentum (SGD) or beta1 (Adam) and ``get_last_lr()``. Resuming is checked by
cutting a run in two through ``state_dict``/``load_state_dict`` in all four
directions (ours/torch → ours/torch): the second half must continue the
uninterrupted torch run.
"""

import io
import math

import pytest
import torch
import torch.optim.lr_scheduler as T

import helpers.lr_scheduler as H
import helpers.optim

# torch warns that we step its schedulers without stepping the optimizer: on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")

STEPS = 120
RTOL = 1e-12
WORST = {"deviation": 0.0}  # largest relative deviation seen, for the record


# --------------------------------------------------------------------------- harness


def make_optimizer(kind="sgd", cls=None):
    """Two param groups with different lrs (and momenta), on throwaway parameters."""
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)
    if kind == "sgd":
        groups = [{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.03, "momentum": 0.5}]
        return (cls or torch.optim.SGD)(groups, lr=0.1, momentum=0.9)
    groups = [{"params": [a], "lr": 1e-3}, {"params": [b], "lr": 3e-4, "betas": (0.8, 0.99)}]
    return (cls or torch.optim.Adam)(groups, lr=1e-3)


def snapshot(optimizer, scheduler):
    """Every number a scheduler may write: lr, momentum or beta1 per group, last lr."""
    values = []
    for group in optimizer.param_groups:
        values.append(group["lr"])
        values.append(group["betas"][0] if "betas" in group else group["momentum"])
    return values + list(scheduler.get_last_lr())


def advance(optimizer, scheduler, steps, metrics=None, start=0):
    """Step the scheduler `steps` times; the snapshot after each step.

    The optimizer is not stepped: schedulers only read and write its param groups,
    and 100 µs per optimizer.step() would make this file several times slower.
    """
    trace = []
    for t in range(start, start + steps):
        scheduler.step() if metrics is None else scheduler.step(metrics[t])
        trace.append(snapshot(optimizer, scheduler))
    return trace


def run(make, module, kind="sgd", steps=STEPS, metrics=None, cls=None):
    optimizer = make_optimizer(kind, cls)
    scheduler = make(module, optimizer)
    return [snapshot(optimizer, scheduler)] + advance(optimizer, scheduler, steps, metrics)


def assert_same(ours, theirs, what=""):
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            deviation = abs(x - y) / max(abs(y), 1e-300)
            WORST["deviation"] = max(WORST["deviation"], deviation)
            assert deviation <= RTOL, f"{what} step {step}: ours {a}, torch {b}"


# ------------------------------------------------------------------ per-class cases
# Each case is (id, make(module, optimizer) -> scheduler, optimizer kind).


def lam_decay(t):
    return 0.95**t


def lam_steps(t):
    return 1.0 / (1 + t // 10)


def mul_wobble(t):
    return 0.97 if t % 3 else 1.02


CASES = {
    "LambdaLR": [
        lambda M, o: M.LambdaLR(o, lam_decay),
        lambda M, o: M.LambdaLR(o, lam_steps),
        lambda M, o: M.LambdaLR(o, [lam_decay, lam_steps]),
        lambda M, o: M.LambdaLR(o, (lambda t: t // 30 + 1, lambda t: 1.0)),
    ],
    "MultiplicativeLR": [
        lambda M, o: M.MultiplicativeLR(o, lambda t: 0.95),
        lambda M, o: M.MultiplicativeLR(o, mul_wobble),
        lambda M, o: M.MultiplicativeLR(o, [lambda t: 0.99, mul_wobble]),
    ],
    "StepLR": [
        lambda M, o: M.StepLR(o, 30),
        lambda M, o: M.StepLR(o, 7, gamma=0.5),
        lambda M, o: M.StepLR(o, 1, gamma=0.97),
        lambda M, o: M.StepLR(o, 10, gamma=1.0),
        lambda M, o: M.StepLR(o, 13, gamma=1.5),
    ],
    "MultiStepLR": [
        lambda M, o: M.MultiStepLR(o, [30, 80]),
        lambda M, o: M.MultiStepLR(o, [10, 10, 50], gamma=0.5),
        lambda M, o: M.MultiStepLR(o, [50, 5, 0], gamma=0.3),
        lambda M, o: M.MultiStepLR(o, []),
        lambda M, o: M.MultiStepLR(o, range(1, 200, 9), gamma=0.9),
    ],
    "ConstantLR": [
        lambda M, o: M.ConstantLR(o),
        lambda M, o: M.ConstantLR(o, factor=0.5, total_iters=10),
        lambda M, o: M.ConstantLR(o, factor=1.0, total_iters=3),
        lambda M, o: M.ConstantLR(o, factor=0.1, total_iters=0),
        lambda M, o: M.ConstantLR(o, factor=0.7, total_iters=500),
    ],
    "LinearLR": [
        lambda M, o: M.LinearLR(o),
        lambda M, o: M.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=20),
        lambda M, o: M.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=50),
        lambda M, o: M.LinearLR(o, start_factor=0.5, end_factor=0.25, total_iters=200),
        lambda M, o: M.LinearLR(o, start_factor=1.0, end_factor=1.0, total_iters=5),
        lambda M, o: M.LinearLR(o, start_factor=0.01, end_factor=0.9, total_iters=1),
    ],
    "ExponentialLR": [
        lambda M, o: M.ExponentialLR(o, 0.95),
        lambda M, o: M.ExponentialLR(o, gamma=0.99),
        lambda M, o: M.ExponentialLR(o, gamma=1.0),
        lambda M, o: M.ExponentialLR(o, gamma=1.01),
    ],
    "PolynomialLR": [
        lambda M, o: M.PolynomialLR(o),
        lambda M, o: M.PolynomialLR(o, total_iters=50, power=2.0),
        lambda M, o: M.PolynomialLR(o, total_iters=100, power=0.5),
        lambda M, o: M.PolynomialLR(o, total_iters=200),
        lambda M, o: M.PolynomialLR(o, total_iters=30, power=3),
    ],
    "CosineAnnealingLR": [
        lambda M, o: M.CosineAnnealingLR(o, 10),
        lambda M, o: M.CosineAnnealingLR(o, T_max=50, eta_min=1e-3),
        lambda M, o: M.CosineAnnealingLR(o, T_max=120, eta_min=0.01),
        lambda M, o: M.CosineAnnealingLR(o, T_max=7),
        lambda M, o: M.CosineAnnealingLR(o, T_max=1, eta_min=1e-4),
        lambda M, o: M.CosineAnnealingLR(o, T_max=300),
    ],
    "CosineAnnealingWarmRestarts": [
        lambda M, o: M.CosineAnnealingWarmRestarts(o, 10),
        lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2),
        lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=3, eta_min=1e-3),
        lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=1),
        lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01),
    ],
}


def cyclic(**kw):
    return lambda M, o: M.CyclicLR(o, **kw)


def one_cycle(**kw):
    return lambda M, o: M.OneCycleLR(o, **kw)


class HalvingScale:
    """A callable-object scale_fn: its attributes travel in the state_dict."""

    def __init__(self):
        self.base = 0.5

    def __call__(self, x):
        return self.base ** (x - 1)


CASES["CyclicLR"] = [
    cyclic(base_lr=0.01, max_lr=0.1, step_size_up=10),
    cyclic(base_lr=0.01, max_lr=0.1, step_size_up=7, step_size_down=13, mode="triangular2"),
    cyclic(base_lr=[0.01, 0.001], max_lr=[0.1, 0.02], step_size_up=5, mode="exp_range", gamma=0.99),
    cyclic(base_lr=0.01, max_lr=0.1, step_size_up=6, scale_fn=lambda x: 1 / (1 + x)),
    cyclic(
        base_lr=0.01,
        max_lr=0.1,
        step_size_up=6,
        scale_fn=lambda x: 0.999**x,
        scale_mode="iterations",
    ),
    cyclic(base_lr=0.01, max_lr=0.1, step_size_up=8, scale_fn=HalvingScale()),
    cyclic(base_lr=0.01, max_lr=0.1, step_size_up=9, cycle_momentum=False),
    cyclic(
        base_lr=0.001,
        max_lr=0.01,
        step_size_up=4,
        step_size_down=11,
        base_momentum=[0.7, 0.85],
        max_momentum=0.95,
    ),
    cyclic(base_lr=0.01, max_lr=0.1, step_size_up=10, mode="exp_range", gamma=0.97),
]
CASES["OneCycleLR"] = [
    one_cycle(max_lr=0.1, total_steps=STEPS),
    one_cycle(max_lr=[0.1, 0.05], total_steps=150, anneal_strategy="linear"),
    one_cycle(max_lr=0.1, total_steps=STEPS, three_phase=True),
    one_cycle(max_lr=0.1, total_steps=STEPS, three_phase=True, anneal_strategy="linear", pct_start=0.25),
    one_cycle(
        max_lr=0.1,
        epochs=10,
        steps_per_epoch=13,
        pct_start=0.4,
        div_factor=10.0,
        final_div_factor=100.0,
    ),
    one_cycle(max_lr=0.1, total_steps=STEPS, cycle_momentum=False),
    one_cycle(max_lr=0.1, total_steps=STEPS, base_momentum=[0.8, 0.6], max_momentum=0.9),
    one_cycle(max_lr=0.1, total_steps=STEPS, pct_start=0.0),
    one_cycle(max_lr=0.1, total_steps=STEPS, pct_start=0.9, anneal_strategy="linear"),
]
# Momentum cycling on Adam's beta1 as well as SGD's momentum.
ADAM_CASES = CASES["CyclicLR"][:3] + CASES["OneCycleLR"][:4]


def warmup_then_cosine(M, o):
    return M.SequentialLR(
        o, [M.LinearLR(o, 0.01, total_iters=10), M.CosineAnnealingLR(o, 90)], milestones=[10]
    )


def three_stages(M, o):
    stages = [M.ConstantLR(o, 0.5, total_iters=20), M.ExponentialLR(o, 0.97), M.StepLR(o, 10)]
    return M.SequentialLR(o, stages, milestones=[5, 40])


def restarts_after_warmup(M, o):
    stages = [M.LinearLR(o, 0.1, total_iters=8), M.CosineAnnealingWarmRestarts(o, 10, 2)]
    return M.SequentialLR(o, stages, milestones=[8])


def nested(M, o):
    return M.SequentialLR(o, [warmup_then_cosine(M, o), M.MultiStepLR(o, [10, 20])], milestones=[60])


def sequential_of_chain(M, o):
    chain = M.ChainedScheduler([M.ConstantLR(o, 0.1, 5), M.ExponentialLR(o, 0.9)])
    return M.SequentialLR(o, [chain, M.PolynomialLR(o, 100, 2.0)], milestones=[30])


def exp_and_step(M, o):
    return M.ChainedScheduler([M.ExponentialLR(o, 0.98), M.StepLR(o, 10, 0.5)])


def warmup_times_cosine(M, o):
    return M.ChainedScheduler([M.LinearLR(o, 0.1, total_iters=10), M.CosineAnnealingLR(o, 50)], optimizer=o)


def chain_of_three(M, o):
    return M.ChainedScheduler(
        [M.ConstantLR(o, 0.5, 20), M.MultiplicativeLR(o, mul_wobble), M.MultiStepLR(o, [30, 60])]
    )


CASES["SequentialLR"] = [
    warmup_then_cosine,
    three_stages,
    restarts_after_warmup,
    nested,
    sequential_of_chain,
]
CASES["ChainedScheduler"] = [exp_and_step, warmup_times_cosine, chain_of_three]

ALL = [(f"{name}-{i}", make) for name, makes in CASES.items() for i, make in enumerate(makes)]


@pytest.mark.parametrize(("case", "make"), ALL, ids=[case for case, _ in ALL])
def test_same_schedule_as_torch(case, make):
    assert_same(run(make, H), run(make, T), case)


@pytest.mark.parametrize("make", ADAM_CASES)
def test_momentum_cycling_on_adam_betas(make):
    ours, theirs = run(make, H, kind="adam"), run(make, T, kind="adam")
    assert_same(ours, theirs)
    assert len({round(values[1], 12) for values in theirs}) > 2  # beta1 really moves


# --------------------------------------------------------- mixing ours with torch's


class Mixed:
    """A module whose classes alternate between torch's and ours, starting with `first`."""

    def __init__(self, first):
        self.turn = first == "torch"

    def __getattr__(self, name):
        self.turn = not self.turn
        return getattr(H if self.turn else T, name)


MIXABLE = CASES["SequentialLR"] + CASES["ChainedScheduler"]


@pytest.mark.parametrize("first", ["ours", "torch"])
@pytest.mark.parametrize("make", MIXABLE)
def test_compositions_mixing_ours_and_torch(make, first):
    assert_same(run(make, Mixed(first)), run(make, T))


def test_plateau_in_a_composition_is_refused():
    for M in (H, T):
        o = make_optimizer()
        for plateau in (H.ReduceLROnPlateau(o), T.ReduceLROnPlateau(o)):
            with pytest.raises(ValueError):
                H.SequentialLR(o, [M.StepLR(o, 5), plateau], milestones=[5])
            with pytest.raises(ValueError):
                H.ChainedScheduler([M.StepLR(o, 5), plateau])


# --------------------------------------------------------------- ReduceLROnPlateau


def metric(t):
    """A loss that improves in bursts, stalls, ties and wobbles: every branch is used."""
    progress = t // 9 if t < 50 else 5 if t < 75 else (t - 25) // 9  # stalls for 25 steps
    return 1.0 / (1 + progress) + 0.003 * ((t * 37) % 11) + (0.2 if t % 29 == 0 else 0.0)


METRICS = [metric(t) for t in range(STEPS + 100)]
PLATEAU = [
    {},
    {"patience": 0},
    {"patience": 2, "factor": 0.5},
    {"patience": 3, "cooldown": 4, "factor": 0.5},
    {"threshold": 0.01, "patience": 1},
    {"threshold": 0.05, "threshold_mode": "abs", "patience": 2},
    {"threshold": 0.0, "threshold_mode": "abs", "patience": 1, "factor": 0.7},
    {"mode": "max", "patience": 2, "factor": 0.5},
    {"mode": "max", "threshold_mode": "abs", "threshold": 0.01, "patience": 1, "cooldown": 2},
    {"mode": "max", "threshold": 0.1, "patience": 0, "factor": 0.9},
    {"patience": 1, "factor": 0.5, "min_lr": 0.01},
    {"patience": 1, "factor": 0.5, "min_lr": [0.02, 1e-3]},
    {"patience": 0, "factor": 0.9, "eps": 5e-3},  # small reductions of group 2 are skipped
    {"patience": 0, "factor": 0.5, "min_lr": [0.0, 0.029], "eps": 0.0},
    {"patience": 0, "factor": 0.5, "eps": 0.015},  # 0.03 → 0.015 changes it by exactly eps
]


@pytest.mark.parametrize("kw", PLATEAU, ids=[str(kw) for kw in PLATEAU])
def test_reduce_on_plateau(kw):
    def make(M, o):
        return M.ReduceLROnPlateau(o, **kw)

    ours, theirs = run(make, H, metrics=METRICS), run(make, T, metrics=METRICS)
    assert_same(ours, theirs, str(kw))
    assert ours[-1][0] < ours[0][0]  # the sequence does trigger reductions


def test_reduce_on_plateau_takes_a_tensor_metric():
    o = make_optimizer()
    s = H.ReduceLROnPlateau(o, patience=0)
    s.step(torch.tensor(1.0))
    s.step(torch.tensor(2.0))
    assert s.get_last_lr() == pytest.approx([0.01, 0.003])


# ------------------------------------------------------------------- resuming


RESUMABLE = [
    ("LambdaLR", CASES["LambdaLR"][2]),
    ("MultiplicativeLR", CASES["MultiplicativeLR"][1]),
    ("StepLR", CASES["StepLR"][1]),
    ("MultiStepLR", CASES["MultiStepLR"][1]),
    ("ConstantLR", CASES["ConstantLR"][1]),
    ("LinearLR", CASES["LinearLR"][3]),
    ("ExponentialLR", CASES["ExponentialLR"][0]),
    ("PolynomialLR", CASES["PolynomialLR"][1]),
    ("CosineAnnealingLR", CASES["CosineAnnealingLR"][1]),
    ("CosineAnnealingWarmRestarts", CASES["CosineAnnealingWarmRestarts"][2]),
    ("CyclicLR", CASES["CyclicLR"][1]),
    ("CyclicLR-scale_fn", CASES["CyclicLR"][5]),
    ("OneCycleLR", CASES["OneCycleLR"][2]),
    ("SequentialLR", nested),
    ("ChainedScheduler", chain_of_three),
    ("ReduceLROnPlateau", lambda M, o: M.ReduceLROnPlateau(o, patience=2, cooldown=3, factor=0.5)),
]
DIRECTIONS = [(H, H), (T, H), (H, T), (T, T)]


def roundtrip(obj):
    """Through torch.save/torch.load, as a checkpoint file would go."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


# Adam only where its betas change: the schedulers that cycle momentum.
RESUME_CASES = [(name, make, "sgd") for name, make in RESUMABLE] + [
    (name, make, "adam") for name, make in RESUMABLE if name.startswith(("CyclicLR", "OneCycleLR"))
]


@pytest.mark.parametrize(("name", "make", "kind"), RESUME_CASES, ids=[f"{n}-{k}" for n, _, k in RESUME_CASES])
def test_resume_from_state_dict(name, make, kind):
    """Cut at step 47, save, load into a fresh optimizer and scheduler, run on."""
    cut = 47
    metrics = METRICS if name == "ReduceLROnPlateau" else None
    uninterrupted = run(make, T, kind, metrics=metrics)
    for saver, loader in DIRECTIONS:
        optimizer = make_optimizer(kind)
        scheduler = make(saver, optimizer)
        advance(optimizer, scheduler, cut, metrics)
        checkpoint = roundtrip({"opt": optimizer.state_dict(), "sched": scheduler.state_dict()})

        optimizer = make_optimizer(kind)
        scheduler = make(loader, optimizer)  # before optimizer.load_state_dict, as torch advises
        optimizer.load_state_dict(checkpoint["opt"])
        scheduler.load_state_dict(checkpoint["sched"])
        resumed = advance(optimizer, scheduler, STEPS - cut, metrics, start=cut)
        direction = f"{saver.__name__} -> {loader.__name__}"
        assert_same(resumed, uninterrupted[cut + 1 :], f"{name} resumed at {cut}, {direction}")


def test_callable_scale_fn_attributes_are_restored():
    o = make_optimizer()
    s = H.CyclicLR(o, 0.01, 0.1, step_size_up=4, scale_fn=HalvingScale())
    s._scale_fn_custom.base = 0.25
    state = s.state_dict()
    fresh = H.CyclicLR(make_optimizer(), 0.01, 0.1, step_size_up=4, scale_fn=HalvingScale())
    fresh.load_state_dict(state)
    assert fresh._scale_fn_custom.base == 0.25


RESUME_BY_LAST_EPOCH = [
    CASES["MultiplicativeLR"][0],
    CASES["StepLR"][1],
    CASES["MultiStepLR"][1],
    CASES["ConstantLR"][1],
    CASES["LinearLR"][1],
    CASES["ExponentialLR"][0],
    CASES["PolynomialLR"][1],
    CASES["CosineAnnealingLR"][1],
    CASES["CosineAnnealingWarmRestarts"][1],
    CASES["CyclicLR"][1],
    CASES["OneCycleLR"][0],
    CASES["LambdaLR"][0],
]


class WithLastEpoch:
    """Module `M` whose classes are created with `last_epoch` (resuming by constructor)."""

    def __init__(self, M, last_epoch):
        self.M, self.last_epoch = M, last_epoch

    def __getattr__(self, name):
        return lambda *args, **kw: getattr(self.M, name)(*args, **kw, last_epoch=self.last_epoch)


def resumed_by_constructor(make, M, last_epoch):
    optimizer = make_optimizer()
    make(T, optimizer)  # leaves initial_lr (and max_lr, ...) in the param groups
    for group in optimizer.param_groups:
        group["lr"] *= 0.5  # an lr the resumed scheduler must continue from
    scheduler = make(WithLastEpoch(M, last_epoch), optimizer)
    return [snapshot(optimizer, scheduler)] + advance(optimizer, scheduler, 30)


@pytest.mark.parametrize("last_epoch", [3, 20])
@pytest.mark.parametrize("make", RESUME_BY_LAST_EPOCH)
def test_constructing_with_last_epoch_matches_torch(make, last_epoch):
    """last_epoch=k: the constructor's step goes to k+1 and keeps the lr it finds."""
    ours = resumed_by_constructor(make, H, last_epoch)
    assert_same(ours, resumed_by_constructor(make, T, last_epoch))


def test_resuming_without_initial_lr_raises_key_error():
    for M in (H, T):
        with pytest.raises(KeyError):
            M.StepLR(make_optimizer(), 10, last_epoch=5)


@pytest.mark.parametrize(("case", "make"), ALL[::3], ids=[case for case, _ in ALL[::3]])
def test_state_dict_has_torchs_keys(case, make):
    torch_only = {"_step_count", "_get_lr_called_within_step"}

    def keys(M):
        return set(make(M, make_optimizer()).state_dict())

    assert keys(H) == keys(T) - torch_only


# ---------------------------------------------------------------- bad arguments


def o():
    return make_optimizer()


def one_scheduler(M):
    optimizer = o()
    return optimizer, [M.StepLR(optimizer, 5)]


BAD = [
    lambda M: M.LambdaLR(o(), [lam_decay]),
    lambda M: M.MultiplicativeLR(o(), [lam_decay, lam_decay, lam_decay]),
    lambda M: M.ConstantLR(o(), factor=1.5),
    lambda M: M.ConstantLR(o(), factor=-0.1),
    lambda M: M.LinearLR(o(), start_factor=0.0),
    lambda M: M.LinearLR(o(), start_factor=1.2),
    lambda M: M.LinearLR(o(), end_factor=1.5),
    lambda M: M.LinearLR(o(), end_factor=-0.5),
    lambda M: M.CosineAnnealingWarmRestarts(o(), T_0=0),
    lambda M: M.CosineAnnealingWarmRestarts(o(), T_0=2.5),
    lambda M: M.CosineAnnealingWarmRestarts(o(), T_0=5, T_mult=0),
    lambda M: M.CosineAnnealingWarmRestarts(o(), T_0=5, T_mult=1.5),
    lambda M: M.CosineAnnealingWarmRestarts(o(), T_0=5, eta_min="0"),
    lambda M: M.CosineAnnealingWarmRestarts(o(), T_0=5).step(-1),
    lambda M: M.CyclicLR(o(), 0.01, 0.1, mode="square"),
    lambda M: M.CyclicLR(o(), [0.01], 0.1),
    lambda M: M.CyclicLR(o(), 0.01, [0.1, 0.2, 0.3]),
    lambda M: M.CyclicLR(torch.optim.Adagrad([torch.zeros(1)]), 0.01, 0.1),
    lambda M: M.CyclicLR(o(), 0.01, 0.1, base_momentum=[0.8]),
    lambda M: M.OneCycleLR(o(), 0.1),
    lambda M: M.OneCycleLR(o(), 0.1, total_steps=0),
    lambda M: M.OneCycleLR(o(), 0.1, total_steps=10.0),
    lambda M: M.OneCycleLR(o(), 0.1, epochs=0, steps_per_epoch=5),
    lambda M: M.OneCycleLR(o(), 0.1, epochs=5, steps_per_epoch=-1),
    lambda M: M.OneCycleLR(o(), 0.1, epochs=5),
    lambda M: M.OneCycleLR(o(), 0.1, total_steps=10, pct_start=1.5),
    lambda M: M.OneCycleLR(o(), 0.1, total_steps=10, pct_start=0),
    lambda M: M.OneCycleLR(o(), 0.1, total_steps=10, anneal_strategy="exp"),
    lambda M: M.OneCycleLR(o(), [0.1], total_steps=10),
    lambda M: M.OneCycleLR(torch.optim.Adagrad([torch.zeros(1)]), 0.1, total_steps=10),
    lambda M: M.ReduceLROnPlateau(o(), factor=1.0),
    lambda M: M.ReduceLROnPlateau(o(), mode="up"),
    lambda M: M.ReduceLROnPlateau(o(), threshold_mode="ratio"),
    lambda M: M.ReduceLROnPlateau(o(), min_lr=[0.1]),
    lambda M: M.SequentialLR(o(), [], milestones=[]),
    lambda M: M.SequentialLR(o(), [M.StepLR(o(), 5)], milestones=[]),
    lambda M: M.SequentialLR(*one_scheduler(M), milestones=[3]),
    lambda M: M.ChainedScheduler([]),
    lambda M: M.ChainedScheduler([M.StepLR(o(), 5), M.StepLR(o(), 5)]),  # two optimizers
]


@pytest.mark.parametrize("build", BAD)
def test_bad_arguments_raise_value_error_like_torch(build):
    with pytest.raises(ValueError):
        build(T)
    with pytest.raises(ValueError):
        build(H)


def test_one_cycle_refuses_to_step_past_total_steps():
    for M in (H, T):
        optimizer = make_optimizer()
        scheduler = M.OneCycleLR(optimizer, 0.1, total_steps=5)
        advance(optimizer, scheduler, 5)
        with pytest.raises(ValueError):
            scheduler.step()


def test_not_an_optimizer_is_a_type_error():
    for M in (H, T):
        with pytest.raises(TypeError):
            M.StepLR([torch.zeros(1)], 10)
    with pytest.raises(TypeError):
        H.MultiplicativeLR(o(), 0.9)


# -------------------------------------------------------- helpers.optim optimizers


HELPERS_OPTIM_CASES = [
    ("sgd", helpers.optim.SGD, CASES["StepLR"][1]),
    ("sgd", helpers.optim.SGD, CASES["CyclicLR"][1]),
    ("sgd", helpers.optim.SGD, CASES["OneCycleLR"][2]),
    ("sgd", helpers.optim.SGD, warmup_then_cosine),
    ("adam", helpers.optim.Adam, CASES["CyclicLR"][2]),
    ("adam", helpers.optim.Adam, CASES["OneCycleLR"][1]),
]


@pytest.mark.parametrize(("kind", "cls", "make"), HELPERS_OPTIM_CASES)
def test_with_helpers_optim(kind, cls, make):
    assert_same(run(make, H, kind, cls=cls), run(make, T, kind))


@pytest.mark.parametrize(("kind", "cls", "make"), HELPERS_OPTIM_CASES[2::3])
def test_training_with_helpers_optim_follows_torch(kind, cls, make):
    """The lrs and momenta we write are the ones the optimizer then uses."""

    def train(optimizer_cls, M):
        optimizer = make_optimizer(kind, optimizer_cls)
        scheduler = make(M, optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for t in range(30):
            for p in params:
                p.grad = torch.full_like(p, math.sin(t + p.numel()))
            optimizer.step()
            scheduler.step()
        return torch.cat([p.detach() for p in params])

    ours, theirs = train(cls, H), train(None, T)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    assert theirs.abs().min() > 0  # the parameters did move


# ----------------------------------------------------------- WarmupStableDecay


def wsd_reference(t, W, S, D, r, decay):
    """An independent statement of WSD: a clipped warmup ramp times a clipped decay."""
    warm = min(1.0, t / W) if W else 1.0
    p = min(1.0, max(0.0, (t - W - S) / D)) if D else float(t >= W + S)
    g = {"linear": 1 - p, "cosine": 0.5 + 0.5 * math.cos(math.pi * p), "1-sqrt": 1 - p**0.5}
    return warm * (r + (1 - r) * g[decay])


WSD = [
    (10, 60, 30, 0.0, "linear"),
    (10, 60, 30, 0.1, "cosine"),
    (5, 80, 20, 0.0, "1-sqrt"),
    (0, 50, 50, 0.01, "linear"),
    (20, 0, 90, 0.0, "cosine"),
    (15, 90, 0, 0.2, "linear"),
    (1, 1, 1, 0.5, "1-sqrt"),
    (30, 200, 10, 0.0, "linear"),
]


@pytest.mark.parametrize(("W", "S", "D", "r", "decay"), WSD)
def test_warmup_stable_decay_follows_its_formula(W, S, D, r, decay):
    optimizer = make_optimizer()
    scheduler = H.WarmupStableDecay(optimizer, W, S, D, min_lr_ratio=r, decay=decay)
    trace = [snapshot(optimizer, scheduler)] + advance(optimizer, scheduler, STEPS)
    for t, values in enumerate(trace):
        f = wsd_reference(t, W, S, D, r, decay)
        assert values[0] == pytest.approx(0.1 * f, rel=RTOL, abs=1e-15)
        assert values[2] == pytest.approx(0.03 * f, rel=RTOL, abs=1e-15)


def test_warmup_stable_decay_hand_values():
    lrs = H.lr_curve(lambda opt: H.WarmupStableDecay(opt, 2, 2, 4), 9, lr=1.0)
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0])
    lrs = H.lr_curve(lambda opt: H.WarmupStableDecay(opt, 0, 1, 2, 0.5, "cosine"), 4, lr=1.0)
    assert lrs == pytest.approx([1.0, 1.0, 0.75, 0.5])


def test_warmup_stable_decay_resumes_and_composes():
    def make(M, o):
        return M.WarmupStableDecay(o, 10, 50, 40, 0.1, "cosine")

    full = run(make, H)
    optimizer = make_optimizer()
    scheduler = make(H, optimizer)
    advance(optimizer, scheduler, 33)
    state = roundtrip(scheduler.state_dict())
    optimizer2 = make_optimizer()
    optimizer2.load_state_dict(optimizer.state_dict())
    scheduler2 = make(H, optimizer2)
    scheduler2.load_state_dict(state)
    assert_same(advance(optimizer2, scheduler2, STEPS - 33, start=33), full[34:])
    # Inside torch's SequentialLR it restarts at its own step 0 (lr 0, warmup).
    optimizer = make_optimizer()
    seq = T.SequentialLR(optimizer, [T.ConstantLR(optimizer, 1.0, 0), make(H, optimizer)], [5])
    trace = [snapshot(optimizer, seq)] + advance(optimizer, seq, 10)
    assert [values[0] for values in trace[4:7]] == pytest.approx([0.1, 0.0, 0.01])


@pytest.mark.parametrize(
    "kw",
    [
        {"warmup_steps": -1},
        {"stable_steps": 2.5},
        {"decay_steps": None},
        {"min_lr_ratio": 1.5},
        {"min_lr_ratio": -0.1},
        {"decay": "exp"},
    ],
)
def test_warmup_stable_decay_bad_arguments(kw):
    args = {"warmup_steps": 1, "stable_steps": 1, "decay_steps": 1, **kw}
    with pytest.raises(ValueError):
        H.WarmupStableDecay(o(), **args)


# --------------------------------------------------------------------- lr_curve


def test_lr_curve():
    assert H.lr_curve(lambda opt: H.StepLR(opt, 3), 7, lr=1.0) == pytest.approx(
        [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01]
    )

    def make(opt):
        return T.OneCycleLR(opt, 0.1, total_steps=60)

    assert H.lr_curve(make, 60) == [values[0] for values in run(lambda M, o: make(o), T, steps=59)]


def test_lr_curve_of_plateau_needs_metrics():
    def make(opt):
        return H.ReduceLROnPlateau(opt, patience=1)

    lrs = H.lr_curve(make, 6, lr=1.0, metrics=[3, 2, 2, 2, 2, 1])
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1, 0.1])
    with pytest.raises(ValueError, match="metrics"):
        H.lr_curve(make, 6)
    with pytest.raises(ValueError, match="metrics"):
        H.lr_curve(lambda opt: T.ReduceLROnPlateau(opt), 6, metrics=[1.0])
    with pytest.raises(ValueError, match="metric"):
        H.lr_curve(lambda opt: H.StepLR(opt, 3), 6, metrics=[1.0] * 6)
