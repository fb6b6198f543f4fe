"""Gradient descent written out by hand: the pieces notebook 01 builds.

The running example fits a line ``ŷ = w·x + b`` to noisy samples of
``y = 3x + 2`` by minimising the mean squared error

    L(w, b) = mean((w·x + b − y)²)

with plain gradient descent, ``p ← p − lr·∇p L``.
"""

import torch

TRUE_W, TRUE_B = 3.0, 2.0


def noisy_line(n=100, seed=0, noise=0.5):
    """Samples of ``y = 3x + 2 + ε``, with ``x ~ U(−1, 1)`` and ``ε ~ N(0, noise²)``.

    Args:
        n: number of points.
        seed: seed of a private generator, so the data never depends on (or
            disturbs) the global random state.
        noise: standard deviation of ε.

    Returns:
        ``x, y``: two float tensors of shape ``(n,)``.
    """
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(n, generator=g) - 1
    y = TRUE_W * x + TRUE_B + noise * torch.randn(n, generator=g)
    return x, y


def mse(w, b, x, y):
    """The loss ``mean((w·x + b − y)²)``."""
    return ((w * x + b - y) ** 2).mean()


def mse_grads(w, b, x, y):
    """The gradient of :func:`mse`, derived by hand (no autograd).

    With the residual ``r = w·x + b − y``:

        ∂L/∂w = 2·mean(r·x)        ∂L/∂b = 2·mean(r)

    Returns:
        ``(dL_dw, dL_db)`` as 0-dim tensors.
    """
    r = w * x + b - y
    return 2 * (r * x).mean(), 2 * r.mean()


def least_squares(x, y):
    """The exact minimiser of :func:`mse`: ``w = cov(x, y) / var(x)``, ``b = ȳ − w·x̄``."""
    dx, dy = x - x.mean(), y - y.mean()
    w = (dx * dy).sum() / (dx * dx).sum()
    return w, y.mean() - w * x.mean()


def zero_grads(params):
    """Forget the accumulated gradients: ``p.grad = None`` for every parameter.

    Same effect as ``optimizer.zero_grad()`` (whose default is ``set_to_none=True``).
    """
    for p in params:
        p.grad = None


def gd_step(params, lr):
    """One step of gradient descent, in place: ``p ← p − lr·p.grad``.

    Contract (the same as ``torch.optim.SGD.step``):

    - every tensor in ``params`` is updated in place, so the caller's tensors
      (and anything holding them) see the new values;
    - parameters whose ``.grad`` is ``None`` took no part in the loss: skipped;
    - the update runs under ``torch.no_grad()``: it is not part of the model,
      so autograd must not record it (and refuses to, in place, on a leaf);
    - gradients are left as they are: zeroing them is the caller's job.

    Args:
        params: iterable of tensors with ``requires_grad=True``.
        lr: learning rate (step size).
    """
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= lr * p.grad


def fit_line(x, y, lr=0.1, steps=300):
    """Fit ``ŷ = w·x + b`` by gradient descent on :func:`mse`, from ``w = b = 0``.

    Each step: forward (the loss), zero the gradients, backward, update.

    Args:
        x, y: data, tensors of shape ``(n,)``.
        lr: learning rate.
        steps: number of updates.

    Returns:
        ``(w, b, losses)``: the fitted 0-dim tensors (leaves, ``requires_grad=True``)
        and ``losses[k]``, the loss (a float) *before* update ``k``.
    """
    w = torch.zeros((), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    losses = []
    for _ in range(steps):
        loss = mse(w, b, x, y)
        zero_grads([w, b])
        loss.backward()
        gd_step([w, b], lr)
        losses.append(loss.item())
    return w, b, losses


def graph_nodes(tensor):
    """Names of the autograd nodes recorded behind ``tensor``, from it back to the leaves.

    Depth first, each node once; ``AccumulateGrad`` is the node that writes a leaf's ``.grad``.
    """
    names, seen, todo = [], set(), [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        todo.extend(child for child, _ in reversed(node.next_functions))
    return names
