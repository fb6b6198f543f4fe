"""helpers.checkpoint.save / load: any run, interrupted anywhere and resumed, is the uninterrupted run."""

import os
import random

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.checkpoint import load, save

_DATA = TensorDataset(torch.randn(36, 3, generator=torch.Generator().manual_seed(4)),
                      torch.randn(36, 1, generator=torch.Generator().manual_seed(5)))
STEPS = 14  # 3 epochs of 5 batches (the last one of 4 samples), stopped in the third


def _run(path, with_scheduler, stop_after=None):
    """A run that is not notebook 09's: a dropout MLP, Adam (two groups, weight decay, amsgrad),
    OneCycleLR or no scheduler, a shuffling DataLoader with its own generator, an augmentation from
    Python's random. Checkpoints in the middle of an epoch after ``stop_after`` steps; resumes from
    ``path`` if it exists. Returns (losses, lrs, model)."""
    torch.manual_seed(3)
    random.seed(3)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 1))
    optimizer = torch.optim.Adam([{"params": model[0].parameters()},
                                  {"params": model[3].parameters(), "lr": 0.03, "weight_decay": 0.01}],
                                 lr=0.01, amsgrad=True)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[0.05, 0.1], total_steps=STEPS)
                 if with_scheduler else None)
    generator = torch.Generator().manual_seed(6)
    loader = DataLoader(_DATA, batch_size=8, shuffle=True, generator=generator)
    step, done = 0, 0
    if os.path.exists(path):
        step, extra = load(path, model=model, optimizer=optimizer, scheduler=scheduler, generator=generator)
        done = extra["batches_done"]
    losses, lrs = [], []
    while step < STEPS:
        epoch_start = generator.get_state()
        for batch, (x, y) in enumerate(loader):
            if batch < done:
                continue
            lrs.append([group["lr"] for group in optimizer.param_groups])
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x * random.uniform(0.8, 1.2)), y)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.item())
            step += 1
            if step == stop_after:
                save(path, model=model, optimizer=optimizer, scheduler=scheduler, step=step,
                     generator=epoch_start, extra={"batches_done": batch + 1})
                return losses, lrs, model
            if step == STEPS:
                break
        done = 0
    return losses, lrs, model


@pytest.mark.parametrize("with_scheduler", [True, False], ids=["OneCycleLR", "no scheduler"])
@pytest.mark.parametrize("stops", [(1,), (5,), (7,), (10,), (3, 4), (6, 9, 13)])
def test_an_interrupted_run_resumes_bit_for_bit(tmp_path, with_scheduler, stops):
    expected_losses, expected_lrs, expected_model = _run(tmp_path / "uninterrupted.pt", with_scheduler)
    path = tmp_path / "run.pt"
    losses, lrs = [], []
    for stop in (*stops, None):
        torch.manual_seed(1000 + len(losses))  # every resume is a new process with another random state
        random.seed(1000 + len(losses))
        more_losses, more_lrs, model = _run(path, with_scheduler, stop)
        losses, lrs = losses + more_losses, lrs + more_lrs
    assert losses == expected_losses and lrs == expected_lrs
    for a, b in zip(expected_model.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_the_run_needs_the_loader_generator_and_the_rng_states(tmp_path):
    # the test above can fail: the same run resumed without the DataLoader's generator differs
    expected = _run(tmp_path / "a.pt", True)[0]
    first = _run(tmp_path / "b.pt", True, stop_after=7)[0]
    checkpoint = torch.load(tmp_path / "b.pt", weights_only=True)
    checkpoint["rng"]["loader"] = torch.Generator().manual_seed(6).get_state()
    torch.save(checkpoint, tmp_path / "b.pt")
    assert first + _run(tmp_path / "b.pt", True)[0] != expected


def _small_run():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_the_file_is_state_dicts_and_rng_states_only(tmp_path):
    model, optimizer = _small_run()
    save(tmp_path / "c.pt", model=model, optimizer=optimizer, step=3, extra={"epoch": 1})
    checkpoint = torch.load(tmp_path / "c.pt", weights_only=True)
    assert sorted(checkpoint) == ["extra", "model", "optimizer", "rng", "step"]  # no scheduler given
    assert sorted(checkpoint["rng"]) == ["python", "torch"]
    assert checkpoint["step"] == 3 and checkpoint["extra"] == {"epoch": 1}
    assert torch.equal(checkpoint["optimizer"]["state"][0]["momentum_buffer"],
                       optimizer.state[model[0].weight]["momentum_buffer"])


def test_saving_does_not_change_the_run(tmp_path):
    model, optimizer = _small_run()
    model.train()
    generator = torch.Generator().manual_seed(1)
    before = torch.get_rng_state(), random.getstate(), generator.get_state()
    save(tmp_path / "d.pt", model=model, optimizer=optimizer, generator=generator)
    after = torch.get_rng_state(), random.getstate(), generator.get_state()
    assert torch.equal(before[0], after[0]) and before[1] == after[1] and torch.equal(before[2], after[2])
    assert model.training


def test_load_restores_the_rng_states_and_returns_step_and_extra(tmp_path):
    model, optimizer = _small_run()
    generator = torch.Generator().manual_seed(1)
    save(tmp_path / "e.pt", model=model, optimizer=optimizer, step=5, generator=generator)
    expected = torch.rand(3), random.random(), torch.rand(3, generator=generator)
    torch.manual_seed(9)
    random.seed(9)
    generator.manual_seed(9)
    assert load(tmp_path / "e.pt", model=model, optimizer=optimizer, generator=generator) == (5, None)
    got = torch.rand(3), random.random(), torch.rand(3, generator=generator)
    assert torch.equal(expected[0], got[0]) and expected[1] == got[1] and torch.equal(expected[2], got[2])


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer = _small_run()
    path = tmp_path / "f.pt"
    save(path, model=model, optimizer=optimizer, step=1)

    def fails(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fails)
    with pytest.raises(OSError, match="disk full"):
        save(path, model=model, optimizer=optimizer, step=2)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert os.listdir(tmp_path) == ["f.pt"]  # no temporary file left behind
