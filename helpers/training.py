"""The canonical training loop, and a small seeded toy problem to run it on.

One training step is always the same four moves, in this order::

    optimizer.zero_grad()                    # forget the previous step's gradients
    loss = loss_fn(model(inputs), targets)   # forward: build the graph
    loss.backward()                          # fill every p.grad
    optimizer.step()                         # read p.grad, update p in place

``training_step`` does exactly that; the loops below only differ in how they
feed it data and what they log. They log ``loss.item()`` (a float), never the
loss tensor, which would keep its step's graph alive.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn


def toy_data(seed=0, n=32, in_dim=5, out_dim=2):
    """A seeded linear-regression data set ``(inputs, targets)``.

    ``inputs`` is ``n × in_dim`` standard normal; ``targets = inputs @ W.T + b + noise``
    for a random ``W``, ``b`` and noise of standard deviation 0.1. Uses its own
    generator, so it never touches the global random state.
    """
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, in_dim, generator=g)
    weight, bias = torch.randn(out_dim, in_dim, generator=g), torch.randn(out_dim, generator=g)
    targets = inputs @ weight.T + bias + 0.1 * torch.randn(n, out_dim, generator=g)
    return inputs, targets


def toy_model(seed=0, in_dim=5, out_dim=2):
    """A freshly initialised ``nn.Linear(in_dim, out_dim)``, the same for the same seed.

    The global random state is restored afterwards.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(in_dim, out_dim)


def training_step(model, optimizer, inputs, targets, loss_fn=F.mse_loss):
    """One step: zero_grad → forward → backward → step. Returns the loss as a float."""
    optimizer.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def train(model, optimizer, data, steps, loss_fn=F.mse_loss):
    """Full-batch training for ``steps`` steps on ``data = (inputs, targets)``.

    Returns the loss history, one float per step (the loss *before* that step's update).
    """
    inputs, targets = data
    return [training_step(model, optimizer, inputs, targets, loss_fn) for _ in range(steps)]


def train_epochs(model, optimizer, batches, epochs, loss_fn=F.mse_loss):
    """Mini-batch training: ``epochs`` passes over ``batches``, a list of ``(inputs, targets)``.

    One step per batch. Returns the mean batch loss of every epoch, as floats.
    """
    history = []
    for _ in range(epochs):
        losses = [training_step(model, optimizer, x, y, loss_fn) for x, y in batches]
        history.append(sum(losses) / len(losses))
    return history


def fine_tune(pretrained, data, steps, lr):
    """Train a copy of ``pretrained`` with ``SGD(lr)``; ``pretrained`` itself is left untouched.

    The optimizer must be built over the *copy's* parameters: those are the
    tensors that the forward pass uses and that ``backward`` fills.
    Returns ``(model, history)``: the trained copy and its loss history (floats).
    """
    model = copy.deepcopy(pretrained)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return model, train(model, optimizer, data, steps)


def train_until(model, optimizer, data, tol, max_steps):
    """Full-batch training until one step improves the loss by less than ``tol``.

    Stops after the first step whose loss is less than ``tol`` below the previous
    step's, or after ``max_steps`` steps. Returns the loss history as floats.
    """
    inputs, targets = data
    history = []
    for _ in range(max_steps):
        history.append(training_step(model, optimizer, inputs, targets))
        if len(history) > 1 and history[-2] - history[-1] < tol:
            break
    return history
