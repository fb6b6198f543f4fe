"""helpers.optim.swa_utils against torch.optim.swa_utils (torch 2.13).

Every comparison is bit for bit (``torch.equal``, ``==`` on float lrs): our code
runs the same floating-point operations as torch's on CPU (torch's foreach lerp
falls back to one ``lerp_`` per tensor there, which is what ours calls).
"""

import copy
import itertools
import math

import pytest
import torch
import torch.optim.lr_scheduler as T
import torch.optim.swa_utils as theirs
from torch import nn

import helpers.lr_scheduler as H
from helpers.optim import swa_utils as ours

# torch warns that we step its schedulers without stepping the optimizer: on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")


def bn_model(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3),
        nn.BatchNorm1d(3, affine=False, momentum=0.3),
    ).to(dtype)


def train_step(model, optimizer, g, dtype):
    """One SGD step on random data, in train mode: parameters and BN statistics move."""
    x = torch.randn(8, 4, generator=g, dtype=torch.float64).to(dtype)
    optimizer.zero_grad()
    model(x).pow(2).sum().backward()
    optimizer.step()


def tensors(module):
    return list(module.state_dict().values())


def assert_equal_tensors(a, b, what=""):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y), (what, x, y)


# ------------------------------------------------------------------ averaging functions

AVERAGES = {  # name -> AveragedModel kwargs, built from ours or torch's module
    "default SWA": lambda m: {},
    "SWA avg_fn": lambda m: {"avg_fn": m.get_swa_avg_fn()},
    "SWA multi_avg_fn": lambda m: {"multi_avg_fn": m.get_swa_multi_avg_fn()},
    **{f"EMA avg_fn {d}": (lambda m, d=d: {"avg_fn": m.get_ema_avg_fn(d)})
       for d in (0.5, 0.999)},
    **{f"EMA multi_avg_fn {d}": (lambda m, d=d: {"multi_avg_fn": m.get_ema_multi_avg_fn(d)})
       for d in (0.9, 0.999)},
    "custom avg_fn": lambda m: {"avg_fn": lambda a, p, n: 0.25 * a + 0.75 * p + n * 1e-3},
}
UPDATES = 50


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_averaged_model_follows_torch_over_50_updates(dtype):
    """Every averaging rule, with and without buffers, on one training run of a BN model."""
    model = bn_model(dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pairs = {
        (name, use_buffers): tuple(
            M.AveragedModel(model, use_buffers=use_buffers, **kwargs(M)) for M in (ours, theirs))
        for name, kwargs in AVERAGES.items() for use_buffers in (False, True)
        if (name, use_buffers) != ("SWA multi_avg_fn", True)  # refused: see the next test
    }
    g = torch.Generator().manual_seed(1)
    for k in range(UPDATES):
        train_step(model, optimizer, g, dtype)
        for config, (a, b) in pairs.items():
            a.update_parameters(model)
            b.update_parameters(model)
            if k % 7 == 0 or k == UPDATES - 1:
                assert a.n_averaged.item() == b.n_averaged.item() == k + 1, config
                assert_equal_tensors(tensors(a), tensors(b), config)
    x = torch.randn(5, 4, dtype=torch.float64).to(dtype)
    for a, b in pairs.values():
        assert list(a.state_dict()) == list(b.state_dict())
        a.eval(), b.eval()
        assert torch.equal(a(x), b(x))


def test_swa_multi_avg_fn_refuses_integer_buffers_like_torch():
    """With use_buffers, BatchNorm's num_batches_tracked (an integer) reaches addcdiv_."""
    model = bn_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for M in (ours, theirs):
        averaged = M.AveragedModel(model, multi_avg_fn=M.get_swa_multi_avg_fn(), use_buffers=True)
        averaged.update_parameters(model)
        train_step(model, optimizer, torch.Generator().manual_seed(0), torch.float32)
        with pytest.raises(RuntimeError, match="Integer division with addcdiv"):
            averaged.update_parameters(model)


def test_the_average_is_the_mean_and_the_ema_is_the_weighted_sum():
    """Closed forms: SWA of θ_1..θ_K is their mean; EMA is Σ w_k θ_k with w from d."""
    model, d, thetas = nn.Linear(3, 2).double(), 0.8, []
    swa, ema = ours.AveragedModel(model), ours.AveragedModel(model, avg_fn=ours.get_ema_avg_fn(d))
    torch.manual_seed(0)
    for _ in range(12):
        with torch.no_grad():
            model.weight.add_(torch.randn_like(model.weight))
        thetas.append(model.weight.detach().clone())
        swa.update_parameters(model), ema.update_parameters(model)
    torch.testing.assert_close(swa.module.weight, torch.stack(thetas).mean(0), rtol=1e-13, atol=0)
    weights = [d ** 11] + [(1 - d) * d ** (11 - k) for k in range(1, 12)]
    expected = sum(w * t for w, t in zip(weights, thetas, strict=True))
    torch.testing.assert_close(ema.module.weight, expected, rtol=1e-13, atol=1e-15)


DECAYS = [0.0, 0.3, 0.5, 0.9, 0.999, 1.0]


@pytest.mark.parametrize("n", [0, 1, 4, torch.tensor(3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_functions_alone_match_torch(n, dtype):
    g = torch.Generator().manual_seed(3)
    avg = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in [(3,), (2, 2), ()]]
    cur = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(dtype) for t in avg]
    single = [("get_swa_avg_fn", ())] + [("get_ema_avg_fn", (d,)) for d in DECAYS]
    for name, args in single:
        f, h = getattr(ours, name)(*args), getattr(theirs, name)(*args)
        assert_equal_tensors([f(a, c, n) for a, c in zip(avg, cur)],
                             [h(a, c, n) for a, c in zip(avg, cur)])
    multi = [("get_swa_multi_avg_fn", ())] + [("get_ema_multi_avg_fn", (d,)) for d in DECAYS]
    for name, args in multi:
        a, b = copy.deepcopy(avg), copy.deepcopy(avg)
        getattr(ours, name)(*args)(a, cur, n)
        getattr(theirs, name)(*args)(b, cur, n)
        assert_equal_tensors(a, b)


def test_integer_tensors_with_the_ema_match_torch():
    a, b, cur = [torch.tensor([3, 9])], [torch.tensor([3, 9])], [torch.tensor([10, -4])]
    ours.get_ema_multi_avg_fn(0.6)(a, cur, 2)
    theirs.get_ema_multi_avg_fn(0.6)(b, cur, 2)
    assert_equal_tensors(a, b)


def test_a_device_is_honoured_and_the_forward_delegates():
    model = bn_model().eval()
    a = ours.AveragedModel(model, device="cpu")
    assert a.n_averaged.device.type == "cpu" and a.module is not model
    x = torch.randn(4, 4)
    assert torch.equal(a(x), model(x))  # a deep copy: same weights before any update


def test_state_dicts_load_both_ways():
    model = bn_model()
    a, b = ours.AveragedModel(model), theirs.AveragedModel(model)
    for _ in range(3):
        b.update_parameters(model)
    a.load_state_dict(b.state_dict())
    assert a.n_averaged.item() == 3
    c = theirs.AveragedModel(model)
    c.load_state_dict(a.state_dict())
    assert_equal_tensors(tensors(c), tensors(b))


def test_errors_are_torchs():
    def message(f, *args, **kwargs):
        with pytest.raises(Exception) as info:
            f(*args, **kwargs)
        return type(info.value), str(info.value)

    model = nn.Linear(2, 2)
    fn = ours.get_swa_avg_fn()
    assert message(ours.AveragedModel, model, avg_fn=fn, multi_avg_fn=fn) == message(
        theirs.AveragedModel, model, avg_fn=fn, multi_avg_fn=fn)
    for name in ("get_ema_avg_fn", "get_ema_multi_avg_fn"):
        for decay in (-0.1, 1.5):
            assert message(getattr(ours, name), decay) == message(getattr(theirs, name), decay)


# ------------------------------------------------------------------ update_bn


def loaders(seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(n, 4, generator=g) * 3 + 1 for n in (8, 8, 5, 8)]
    return {
        "tuples": [(x, torch.zeros(len(x))) for x in xs],
        "lists": [[x, torch.zeros(len(x))] for x in xs],
        "tensors": xs,
    }


@pytest.mark.parametrize("kind", ["tuples", "lists", "tensors"])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("device", [None, "cpu"])
def test_update_bn_matches_torch(kind, training, device):
    a = bn_model(seed=1)
    with torch.no_grad():  # statistics that must be thrown away
        for m in a.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.fill_(5.0), m.running_var.fill_(7.0), m.num_batches_tracked.fill_(9)
    a.train(training)
    b = copy.deepcopy(a)
    ours.update_bn(loaders()[kind], a, device=device)
    theirs.update_bn(loaders()[kind], b, device=device)
    assert_equal_tensors(tensors(a), tensors(b))
    assert [m.momentum for m in a.modules() if isinstance(m, nn.BatchNorm1d)] == [0.1, 0.3]
    assert all(m.training == training for m in a.modules())


def test_update_bn_is_the_plain_average_of_the_batch_statistics():
    """The oracle without torch's update_bn: with momentum=None, the mean of the batch means."""
    bn, xs = nn.BatchNorm1d(4).double(), [x.double() for x in loaders()["tensors"]]
    ours.update_bn(xs, bn)
    means = torch.stack([x.mean(0) for x in xs])
    variances = torch.stack([x.var(0, unbiased=True) for x in xs])
    torch.testing.assert_close(bn.running_mean, means.mean(0), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(bn.running_var, variances.mean(0), rtol=1e-12, atol=1e-14)
    assert bn.num_batches_tracked.item() == len(xs) and bn.momentum == 0.1 and bn.training


def test_update_bn_on_an_averaged_model():
    model = bn_model()
    a, b = ours.AveragedModel(model), theirs.AveragedModel(model)
    a.update_parameters(model), b.update_parameters(model)
    ours.update_bn(loaders()["tuples"], a)
    theirs.update_bn(loaders()["tuples"], b)
    assert_equal_tensors(tensors(a), tensors(b))


def test_update_bn_without_batchnorm_does_nothing():
    class Untouchable:
        def __iter__(self):
            raise AssertionError("the loader was read")

    model = nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5)).eval()
    before = copy.deepcopy(model.state_dict())
    ours.update_bn(Untouchable(), model)
    assert_equal_tensors(tensors(model), list(before.values()))
    assert not model.training


# ------------------------------------------------------------------ SWALR


def optimizer(lrs=(0.1, 0.03)):
    return torch.optim.SGD([{"params": [torch.zeros(2)], "lr": lr} for lr in lrs], momentum=0.9)


def lrs(opt, scheduler):
    return [g["lr"] for g in opt.param_groups] + list(scheduler.get_last_lr())


SWALR_CASES = [
    {"swa_lr": swa_lr, "anneal_epochs": epochs, "anneal_strategy": strategy}
    for swa_lr, epochs, strategy in itertools.product(
        [0.05, [0.01, 0.2], (0.5, 0.0)], [0, 1, 3, 10], ["cos", "linear"])
]


@pytest.mark.parametrize("kw", SWALR_CASES)
def test_swalr_follows_torch_every_step(kw):
    runs = []
    for M in (ours, theirs):
        opt = optimizer()
        s = M.SWALR(opt, **kw)
        trace = [lrs(opt, s)]
        for _ in range(16):
            s.step()
            trace.append(lrs(opt, s))
        runs.append((trace, [g["swa_lr"] for g in opt.param_groups]))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_swalr_follows_its_formula(strategy):
    """Independent of torch: lr_s = α_s·swa_lr + (1 − α_s)·lr_0 with α from t = s/E."""
    opt, E = optimizer((0.4,)), 5
    s = ours.SWALR(opt, swa_lr=0.02, anneal_epochs=E, anneal_strategy=strategy)
    for step in range(9):
        t = min(1.0, step / E)
        alpha = (1 - math.cos(math.pi * t)) / 2 if strategy == "cos" else t
        assert opt.param_groups[0]["lr"] == pytest.approx(alpha * 0.02 + (1 - alpha) * 0.4,
                                                          rel=1e-12)
        s.step()


@pytest.mark.parametrize("first", ["cosine", "multiplicative"])
@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_swalr_after_another_scheduler_as_in_torchs_recipe(first, strategy):
    """Both schedulers made at the start; the first steps until swa_start, then SWALR."""
    runs = []
    for L, M in ((H, ours), (T, theirs)):
        opt = optimizer()
        if first == "cosine":
            scheduler = L.CosineAnnealingLR(opt, T_max=30)
        else:
            scheduler = L.MultiplicativeLR(opt, lr_lambda=lambda epoch: 0.9)
        swa = M.SWALR(opt, swa_lr=[0.05, 0.002], anneal_epochs=4, anneal_strategy=strategy)
        trace = []
        for i in range(30):
            (swa if i > 12 else scheduler).step()
            trace.append([g["lr"] for g in opt.param_groups])
        runs.append(trace)
    assert runs[0] == runs[1]


@pytest.mark.parametrize(("save", "load"), list(itertools.product([ours, theirs], repeat=2)))
def test_swalr_resumes_from_a_state_dict(save, load):
    kw = {"swa_lr": [0.05, 0.01], "anneal_epochs": 6, "anneal_strategy": "linear"}
    opt = optimizer()
    uninterrupted = theirs.SWALR(opt, **kw)
    expected = []
    for _ in range(12):
        uninterrupted.step()
        expected.append(lrs(opt, uninterrupted))

    first = optimizer()
    s = save.SWALR(first, **kw)
    for _ in range(4):
        s.step()
    second = optimizer()
    resumed = load.SWALR(second, **{**kw, "anneal_strategy": "cos"})  # the state says linear
    second.load_state_dict(first.state_dict())
    resumed.load_state_dict(copy.deepcopy(s.state_dict()))
    got = []
    for _ in range(8):
        resumed.step()
        got.append(lrs(second, resumed))
    assert got == expected[4:]


def test_swalr_state_dict_has_torchs_keys():
    a, b = ours.SWALR(optimizer(), 0.05), theirs.SWALR(optimizer(), 0.05)
    assert set(b.state_dict()) - set(a.state_dict()) <= {"_get_lr_called_within_step"}
    assert "anneal_func" not in a.state_dict()


def test_swalr_resumes_with_last_epoch_and_steps_with_an_epoch_like_torch():
    runs = []
    for M in (ours, theirs):
        opt = optimizer()
        for g in opt.param_groups:
            g["initial_lr"] = 2 * g["lr"]
        s = M.SWALR(opt, 0.05, anneal_epochs=3, last_epoch=4)
        s.step()
        with pytest.warns(UserWarning, match="The epoch parameter"):
            s.step(7)
        s.step()
        runs.append((lrs(opt, s), s.last_epoch, s.base_lrs))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("kw", [
    {"swa_lr": 0.1, "anneal_strategy": "exp"},
    {"swa_lr": 0.1, "anneal_strategy": "Cos"},
    {"swa_lr": 0.1, "anneal_epochs": -1},
    {"swa_lr": 0.1, "anneal_epochs": 2.0},
    {"swa_lr": [0.1]},
    {"swa_lr": [0.1, 0.2, 0.3]},
])
def test_swalr_validates_like_torch(kw):
    messages = []
    for M in (ours, theirs):
        with pytest.raises(ValueError) as info:
            M.SWALR(optimizer(), **kw)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_swalr_refuses_what_is_not_an_optimizer_like_torch():
    for M in (ours, theirs):  # swa_lr is spread over param_groups before the type check
        with pytest.raises(AttributeError, match="'list' object has no attribute 'param_groups'"):
            M.SWALR([], 0.1)


def test_the_submodule_is_reachable_like_torchs():
    import helpers.optim

    assert helpers.optim.swa_utils is ours
    assert "swa_utils" in helpers.optim.__all__
    assert sorted(ours.__all__) == sorted(theirs.__all__)
