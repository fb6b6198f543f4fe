"""The digits task of notebooks 10–13: seeded, shaped as documented, and learnable."""

import torch

from helpers.tasks import CLASSES, digits, evaluate, mlp


def test_the_task_is_the_same_for_the_same_seed_and_differs_for_another():
    a, b, c = digits(seed=0), digits(seed=0), digits(seed=1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_train, c.x_train)


def test_shapes_ranges_and_every_class_present():
    task = digits(n_train=200, n_val=50)
    assert task.x_train.shape == (200, 64) and task.x_val.shape == (50, 64)
    assert task.x_train.dtype == torch.float32 and task.y_train.dtype == torch.int64
    assert 0 <= task.x_train.min() and task.x_train.max() <= 1
    assert set(task.y_train.tolist()) == set(range(CLASSES))


def test_the_global_rng_is_left_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    digits(n_train=20, n_val=5)
    mlp(seed=3)
    assert torch.equal(torch.rand(3), expected)


def test_an_mlp_learns_it_well_above_chance_but_not_perfectly():
    task = digits()
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_before, _ = evaluate(model, *task.val)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(task.x_train), task.y_train).backward()
        optimizer.step()
    loss_after, accuracy = evaluate(model, *task.val)
    assert loss_after < loss_before / 2
    assert 0.5 < accuracy < 0.99
    assert model.training  # evaluate() restores the mode
