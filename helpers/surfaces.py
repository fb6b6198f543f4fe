"""Two-dimensional test surfaces for watching optimizers move.

Each surface is a loss ``f(xy)`` of a point ``xy = (x, y)``, written with torch
so autograd gives the gradient. ``xy`` may carry extra leading dimensions
(``(..., 2)``), so the same function evaluates a whole grid for a contour plot.

    >>> from helpers.surfaces import RAVINE, trajectory
    >>> path = trajectory(RAVINE, lambda p: torch.optim.SGD(p, lr=0.05), steps=30)
    >>> path.shape                  # start point + one row per step
    torch.Size([31, 2])

| surface        | what it shows                                         | minimum       |
|----------------|-------------------------------------------------------|---------------|
| ``RAVINE``     | ill-conditioned quadratic: zig-zag vs. momentum       | (0, 0)        |
| ``ROSENBROCK`` | long, curved, flat valley                             | (1, 1)        |
| ``SADDLE``     | a saddle at the origin between two minima             | (0, ±1)       |
| ``HIMMELBLAU`` | four equal minima: the start decides where you land   | (3, 2), …     |
| ``RASTRIGIN``  | a bowl covered in local minima                        | (0, 0)        |
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "HIMMELBLAU",
    "RASTRIGIN",
    "RAVINE",
    "ROSENBROCK",
    "SADDLE",
    "SURFACES",
    "Surface",
    "trajectory",
]


@dataclass(frozen=True)
class Surface:
    """A loss over the plane, with its global minima and a view that shows it well.

    Args:
        name: short name, used in plot titles.
        f: ``f(x, y)`` on tensors of any (equal) shape, elementwise.
        minima: the global minima ``(x, y)``.
        start: a default starting point that makes the surface's point.
        xlim, ylim: the plotting window.
    """

    name: str
    f: Callable[[Tensor, Tensor], Tensor]
    minima: tuple[tuple[float, float], ...]
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def __call__(self, xy: Tensor) -> Tensor:
        """The loss at ``xy`` of shape ``(..., 2)``; the result has shape ``(...)``."""
        x, y = xy.unbind(-1)
        return self.f(x, y)

    @property
    def minimum(self) -> float:
        """The lowest value of the surface."""
        return float(self(torch.tensor(self.minima[0], dtype=torch.float64)))


RAVINE = Surface(
    "ravine",
    lambda x, y: 0.5 * (x**2 + 20 * y**2),  # curvatures 1 and 20: condition number 20
    minima=((0.0, 0.0),),
    start=(-4.5, 1.0),
    xlim=(-5.0, 2.5),
    ylim=(-1.5, 1.5),
)

ROSENBROCK = Surface(
    "Rosenbrock",
    lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
    minima=((1.0, 1.0),),
    start=(-1.5, 2.0),
    xlim=(-2.0, 2.0),
    ylim=(-1.0, 3.0),
)

SADDLE = Surface(
    "saddle",
    lambda x, y: 0.5 * x**2 + 0.25 * y**4 - 0.5 * y**2,  # saddle point at (0, 0)
    minima=((0.0, 1.0), (0.0, -1.0)),
    start=(-2.0, 0.01),
    xlim=(-2.5, 2.5),
    ylim=(-1.8, 1.8),
)

HIMMELBLAU = Surface(
    "Himmelblau",
    lambda x, y: (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
    minima=(
        (3.0, 2.0),
        (-2.805118086952745, 3.131312518250573),
        (-3.779310253377747, -3.283185991286170),
        (3.584428340330492, -1.848126526964404),
    ),
    start=(0.0, 0.0),
    xlim=(-5.0, 5.0),
    ylim=(-5.0, 5.0),
)

RASTRIGIN = Surface(
    "Rastrigin",
    lambda x, y: (
        20 + x**2 - 10 * torch.cos(2 * math.pi * x) + y**2 - 10 * torch.cos(2 * math.pi * y)
    ),
    minima=((0.0, 0.0),),
    start=(-3.2, 2.3),
    xlim=(-4.0, 4.0),
    ylim=(-4.0, 4.0),
)

SURFACES = {s.name: s for s in (RAVINE, ROSENBROCK, SADDLE, HIMMELBLAU, RASTRIGIN)}


def trajectory(
    surface: Surface,
    make_optimizer: Callable[[list[Tensor]], torch.optim.Optimizer],
    steps: int,
    start: tuple[float, float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Run an optimizer on a surface and return the points it visits.

    Args:
        surface: the loss to minimise.
        make_optimizer: builds the optimizer from a parameter list,
            e.g. ``lambda params: torch.optim.SGD(params, lr=0.1)``.
        steps: how many ``optimizer.step()`` calls.
        start: the first point; ``surface.start`` if omitted.
        dtype: of the point; float64 keeps a long run the same on every CPU.

    Each step is ``optimizer.step(closure)``, so optimizers that re-evaluate the
    loss (``torch.optim.LBFGS``) work too.

    Returns:
        A ``(n, 2)`` tensor: the start, then the point after each step. A run that
        diverges stops at the last point with a finite loss, so ``n ≤ steps + 1``.
    """
    xy = torch.tensor(surface.start if start is None else start, dtype=dtype, requires_grad=True)
    optimizer = make_optimizer([xy])

    def closure():
        xy.grad = None  # what optimizer.zero_grad() does, without its overhead on every step
        loss = surface(xy)
        loss.backward()
        return loss

    points = [xy.detach().clone()]
    for _ in range(steps):
        loss = optimizer.step(closure)  # the loss at points[-1], computed anyway by the closure
        if not torch.isfinite(surface(points[-1]) if loss is None else loss):
            break
        points.append(xy.detach().clone())
    while len(points) > 1 and not torch.isfinite(surface(points[-1])):
        points.pop()
    return torch.stack(points)
