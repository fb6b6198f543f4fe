"""helpers.recipes against torch: the closed-form warmup + cosine against SequentialLR and a LambdaLR,
accumulation against one big batch, the EMA against AveragedModel, the AMP step against the loop
written out with torch's GradScaler."""

import math

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from helpers import recipes
from helpers.tasks import digits, mlp


def torch_lrs(make, base, steps):
    p = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=base)
    scheduler = make(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(("W", "T", "base", "low"),
                         [(5, 20, 0.1, 1e-3), (1, 10, 2.0, 0.0), (37, 400, 0.05, 0.0), (10, 300, 3e-4, 3e-5)])
def test_warmup_cosine_is_torchs_sequential_lr(W, T, base, low):
    def make(o):
        return S.SequentialLR(o, [S.LinearLR(o, start_factor=1 / (W + 1), total_iters=W),
                                  S.CosineAnnealingLR(o, T_max=T - W, eta_min=low)], milestones=[W])

    expected = torch_lrs(make, base, T + 1)
    got = [recipes.warmup_cosine_lr(t, base, W, T, low) for t in range(T + 1)]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert got[W] == base and got[T] == pytest.approx(low, abs=1e-15)


@pytest.mark.parametrize(("W", "T", "base", "low"), [(5, 20, 0.1, 1e-3), (8, 60, 0.3, 0.0)])
def test_warmup_from_zero_is_hugging_faces_lambda(W, T, base, low):
    """get_cosine_with_min_lr_schedule_with_warmup's lr_lambda, written out from its source."""
    def hf(t):
        if t < W:
            return t / max(1, W)
        progress = (t - W) / max(1, T - W)
        rate = low / base
        return 0.5 * (1 + math.cos(math.pi * progress)) * (1 - rate) + rate

    expected = torch_lrs(lambda o: S.LambdaLR(o, hf), base, T + 1)
    got = [recipes.warmup_cosine_lr(t, base, W, T, low, from_zero=True) for t in range(T + 1)]
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert got[0] == 0.0


def test_accumulation_is_one_big_batch():
    task = digits(n_train=64, n_val=1)
    x, y = task.x_train.double(), task.y_train
    sizes = [9, 9, 9, 9, 9, 9, 10]  # groups (9, 9, 9), (9, 9, 9), (10)
    micro, start = [], 0
    for n in sizes:
        micro.append((x[start:start + n], y[start:start + n]))
        start += n
    runs = []
    for accumulate in (True, False):
        model = mlp(hidden=16).double()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        scheduler = S.StepLR(optimizer, 1, gamma=0.5)
        if accumulate:
            loss_fn = nn.functional.cross_entropy
            losses = recipes.train_accumulated(model, loss_fn, optimizer, scheduler, micro, 3)
        else:
            losses = []
            for lo, hi in ((0, 27), (27, 54), (54, 64)):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x[lo:hi]), y[lo:hi])
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
        runs.append((losses, [p.detach() for p in model.parameters()], scheduler.last_epoch))
    (l1, w1, e1), (l2, w2, e2) = runs
    assert l1 == pytest.approx(l2, rel=1e-12) and e1 == e2 == 3
    assert all(torch.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(w1, w2))


@pytest.mark.parametrize("use_buffers", [False, True])
def test_ema_is_averaged_model_with_ema_multi_avg_fn(use_buffers):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
    theirs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=use_buffers)
    ours = recipes.EMA(model, 0.9, use_buffers=use_buffers)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(20):
        model(torch.randn(8, 3, dtype=torch.float64)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        theirs.update_parameters(model)
        ours.update_parameters(model)
        a, b = theirs.module.state_dict(), ours.module.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # num_batches_tracked too
    assert ours.n_averaged == int(theirs.n_averaged) == 20
    x = torch.randn(5, 3, dtype=torch.float64)
    assert torch.equal(ours.eval()(x), theirs.eval()(x))


def test_amp_step_skips_the_scheduler_exactly_when_the_scaler_skips():
    task = digits(n_train=64, n_val=1)
    model, twin = mlp(hidden=16), mlp(hidden=16)
    runs = []
    for net in (model, twin):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        runs.append((net, optimizer, torch.amp.GradScaler("cpu", init_scale=2.0**16, growth_interval=2),
                     S.StepLR(optimizer, 1, gamma=0.9)))
    x, y = task.x_train, task.y_train
    stepped = []
    for k in range(8):
        xb = x if k not in (0, 5) else torch.full_like(x, math.inf)  # poisoned: non-finite gradients
        net, optimizer, scaler, scheduler = runs[0]
        stepped.append(recipes.amp_train_step(net, nn.functional.cross_entropy, xb, y, optimizer, scaler,
                                              scheduler, 1.0))
        net, optimizer, scaler, scheduler = runs[1]  # the same written out, skip read from the scaler
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(net(xb), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        found_inf = sum(v.item() for v in scaler._found_inf_per_device(optimizer).values())
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        if not found_inf:
            scheduler.step()
        assert runs[0][2].get_scale() == scaler.get_scale()
        assert runs[0][3].last_epoch == scheduler.last_epoch
    assert [k for k, s in enumerate(stepped) if not s] == [0, 5]
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    assert runs[0][3].last_epoch == 6  # 8 batches, 2 skipped
