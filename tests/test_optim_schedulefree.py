"""helpers.optim.SGDScheduleFree / AdamWScheduleFree against the schedulefree package (1.4.1).

Each configuration runs ours and the package's side by side on the same seeded
parameters (two param groups with different settings, a parameter whose grad is
sometimes None) through a script of steps, ``train()``/``eval()`` switches, lr
changes and state_dict round trips (ours → package and package → ours). After every
action the parameters, the state (z, exp_avg_sq) and each group's counters (k,
weight_sum, lr_max, scheduled_lr, train_mode) must agree bit for bit (the largest
deviation is 0). The package is a test-only
dependency (requirements/top.txt); nothing in helpers/ imports it.
"""

import copy

import pytest
import torch

schedulefree = pytest.importorskip("schedulefree")

from helpers.optim import AdamWScheduleFree, SGDScheduleFree  # noqa: E402

SHAPES = [(3, 4), (5,), (2, 2), ()]
GROUP_KEYS = ("lr", "k", "weight_sum", "lr_max", "scheduled_lr", "train_mode")

SGD_CONFIGS = [
    {},
    {"lr": 0.1},
    {"lr": 0.5, "momentum": 0.5},
    {"lr": 0.2, "momentum": 0.99, "weight_decay": 0.01},
    {"lr": 0.3, "warmup_steps": 10},
    {"lr": 0.3, "warmup_steps": 25, "weight_lr_power": 0.0},
    {"lr": 0.1, "r": 1.0},
    {"lr": 0.1, "r": 0.5, "weight_lr_power": 1.0, "warmup_steps": 5, "weight_decay": 0.1},
    {"lr": 0.05, "momentum": 0.1, "foreach": False},
]
ADAMW_CONFIGS = [
    {},
    {"lr": 0.01},
    {"lr": 0.02, "betas": (0.5, 0.9)},
    {"lr": 0.01, "betas": (0.95, 0.99), "eps": 1e-3},
    {"lr": 0.01, "weight_decay": 0.1},
    {"lr": 0.03, "warmup_steps": 10},
    {"lr": 0.03, "warmup_steps": 40, "weight_lr_power": 0.0, "r": 2.0},
    {"lr": 0.01, "r": 1.0, "weight_lr_power": 1.0, "weight_decay": 0.05},
    {"lr": 0.005, "betas": (0.1, 0.5), "foreach": False},
]
# Per-group overrides for the second group: every hyperparameter differs.
SECOND_GROUP = {
    "sgd": {"lr": 0.07, "momentum": 0.8, "weight_decay": 0.02, "warmup_steps": 3, "r": 0.25,
            "weight_lr_power": 1.5},
    "adamw": {"lr": 0.004, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.03,
              "warmup_steps": 3, "r": 0.25, "weight_lr_power": 1.5},
}

# The script: ("step", n) steps, ("eval",), ("train",), ("lr", factor) scales every
# group's lr, ("reload",) round-trips both optimizers' state dicts through the other class.
SCRIPT = [("train",), ("step", 5), ("eval",), ("eval",), ("train",), ("train",), ("step", 20),
          ("lr", 0.5), ("step", 10), ("eval",), ("reload",), ("train",), ("step", 15),
          ("reload",), ("step", 120), ("eval",)]


def make_params(dtype):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=generator, dtype=dtype).requires_grad_() for s in SHAPES]


def make(cls, params, kind, config, two_groups):
    groups = [{"params": params[:2]}, {"params": params[2:], **SECOND_GROUP[kind]}]
    return cls(groups if two_groups else params, **config)


def set_grads(params, generator, step):
    for i, p in enumerate(params):
        none = i == 1 and step % 7 in (0, 1)  # parameter 1 has no gradient on some steps
        p.grad = None if none else torch.randn(p.shape, generator=generator, dtype=p.dtype)


def assert_same(ours, theirs, where):
    (p_ours, o_ours), (p_theirs, o_theirs) = ours, theirs
    for p, q in zip(p_ours, p_theirs, strict=True):
        assert torch.equal(p, q), f"{where}: parameter differs by {(p - q).abs().max().item():.3g}"
        s, t = o_ours.state[p], o_theirs.state[q]
        assert s.keys() == t.keys(), where
        for key in s:
            assert torch.equal(s[key], t[key]), f"{where}: state {key} differs"
    for g, h in zip(o_ours.param_groups, o_theirs.param_groups, strict=True):
        assert set(g) == set(h), where
        for key in GROUP_KEYS:
            assert g[key] == h[key], f"{where}: group[{key!r}] ours {g[key]}, package {h[key]}"


def reload(params, saved_by, cls, kind, config, two_groups):
    """A fresh ``cls`` on ``params``, loaded with the state dict of ``saved_by``."""
    fresh = make(cls, params, kind, config, two_groups)
    fresh.load_state_dict(copy.deepcopy(saved_by.state_dict()))
    return fresh


def play(kind, config, dtype, two_groups):
    ours_cls, theirs_cls = {
        "sgd": (SGDScheduleFree, schedulefree.SGDScheduleFree),
        "adamw": (AdamWScheduleFree, schedulefree.AdamWScheduleFree),
    }[kind]
    p_ours, p_theirs = make_params(dtype), make_params(dtype)
    ours = p_ours, make(ours_cls, p_ours, kind, config, two_groups)
    theirs = p_theirs, make(theirs_cls, p_theirs, kind, config, two_groups)
    gen_ours, gen_theirs = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    t = 0
    for action in SCRIPT:
        if action[0] == "step":
            for _ in range(action[1]):
                t += 1
                for (params, optimizer), gen in ((ours, gen_ours), (theirs, gen_theirs)):
                    set_grads(params, gen, t)
                    optimizer.step()
                assert_same(ours, theirs, f"{kind} {config} {dtype} step {t}")
            continue
        for _, optimizer in (ours, theirs):
            if action[0] == "lr":
                for group in optimizer.param_groups:
                    group["lr"] *= action[1]
            elif action[0] in ("train", "eval"):
                getattr(optimizer, action[0])()
        if action[0] == "reload":  # each continues as the other's class, from the other's state
            ours, theirs = (
                (p_ours, reload(p_ours, theirs[1], ours_cls, kind, config, two_groups)),
                (p_theirs, reload(p_theirs, ours[1], theirs_cls, kind, config, two_groups)),
            )
        assert_same(ours, theirs, f"{kind} {config} {dtype} after {action} at step {t}")
    return t


# Every config in float64 with two groups (each hyperparameter differs in the second), and in
# float32 with one group or two in turn: each kind meets every dtype × groups pair, at half the
# time of the full product (what float32 changes, the state's dtype and rounding, is the same code
# path whatever the config).
CASES = [(kind, config, dtype, two_groups)
         for kind, configs in (("sgd", SGD_CONFIGS), ("adamw", ADAMW_CONFIGS))
         for i, config in enumerate(configs)
         for dtype, two_groups in ((torch.float64, True), (torch.float32, i % 2 == 0))]


@pytest.mark.parametrize(("kind", "config", "dtype", "two_groups"), CASES, ids=[
    f"{k}-{c}-{str(d)[6:]}-{'two groups' if g else 'one group'}" for k, c, d, g in CASES])
def test_same_as_the_package(kind, config, dtype, two_groups):
    assert play(kind, config, dtype, two_groups) == 170


@pytest.mark.parametrize("cls", [SGDScheduleFree, AdamWScheduleFree])
def test_step_outside_train_mode_raises_as_the_package(cls):
    p = torch.zeros(2, requires_grad=True)
    optimizer = cls([p])
    p.grad = torch.ones(2)
    with pytest.raises(Exception, match="Optimizer was not in train mode when step is called"):
        optimizer.step()
    optimizer.train()
    optimizer.step()
    optimizer.eval()
    with pytest.raises(Exception, match="not in train mode"):
        optimizer.step()


def test_defaults_are_the_packages():
    import inspect

    for ours, theirs in ((SGDScheduleFree, schedulefree.SGDScheduleFree),
                         (AdamWScheduleFree, schedulefree.AdamWScheduleFree)):
        a, b = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
        assert list(a) == list(b)
        for name in a:
            assert a[name].default == b[name].default or name == "params", name


def test_sgd_rejects_what_the_package_rejects():
    p = [torch.zeros(1, requires_grad=True)]
    for kwargs in ({"lr": -1.0}, {"weight_decay": -0.1}, {"momentum": 0.0}, {"momentum": 1.0}):
        for cls in (SGDScheduleFree, schedulefree.SGDScheduleFree):
            with pytest.raises(ValueError):
                cls(p, **kwargs)


@pytest.mark.parametrize("cls", [SGDScheduleFree, AdamWScheduleFree])
def test_grad_is_left_untouched(cls):
    p = torch.ones(3, requires_grad=True)
    optimizer = cls([p], weight_decay=0.1)
    optimizer.train()
    p.grad = torch.full((3,), 2.0)
    optimizer.step()
    assert torch.equal(p.grad, torch.full((3,), 2.0))

