"""Pictures of optimizers at work: paths over contour lines, loss curves.

Both functions take the paths as ``{label: (n, 2) tensor}`` (what
``helpers.surfaces.trajectory`` returns) and give each label the same colour,
so a path and its loss curve match across plots.

    >>> paths = {"SGD": trajectory(RAVINE, sgd, 40), "momentum": trajectory(RAVINE, mom, 40)}
    >>> fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    >>> plot_paths(RAVINE, paths, ax=left)
    >>> plot_losses(RAVINE, paths, ax=right)
"""

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from .surfaces import Surface

__all__ = ["COLORS", "plot_losses", "plot_paths"]

# Colour-blind-safe (Okabe–Ito), in the order paths are drawn.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def _legend_below(ax, entries):
    """A legend under the axes, where it hides no path (and costs no search for a free spot)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=min(entries, 3), fontsize="small",
              frameon=False)


def _axes(ax):
    return plt.subplots(figsize=(6, 4))[1] if ax is None else ax


def plot_paths(
    surface: Surface,
    paths: dict[str, Tensor],
    ax: plt.Axes | None = None,
    levels: int = 20,
    resolution: int = 200,
    legend: bool = True,
) -> plt.Axes:
    """Draw the surface's contour lines, its minima (★) and each path on top.

    Contour levels are spaced evenly in ``log(1 + f − min)``, dense near the
    minimum, so flat valleys and steep walls both show. A path is a line through
    its points, each step marked with a dot, its start with a ring.

    Args:
        surface: the loss; its ``xlim``/``ylim`` set the window.
        paths: ``{label: (n, 2) tensor of points}``, drawn in order.
        ax: where to draw; a new figure if omitted.
        levels: number of contour lines.
        resolution: grid points per axis for the contours.
        legend: name the paths in a legend below the axes, off the paths (with no
            paths, or ``False``, none).

    Returns:
        The axes, for titles or further drawing.
    """
    ax = _axes(ax)
    x = torch.linspace(*surface.xlim, resolution, dtype=torch.float64)
    y = torch.linspace(*surface.ylim, resolution, dtype=torch.float64)
    grid_x, grid_y = torch.meshgrid(x, y, indexing="xy")
    height = torch.log1p(surface.f(grid_x, grid_y) - surface.minimum)
    ax.contour(grid_x, grid_y, height, levels=levels, cmap="Greys_r", linewidths=0.6)
    minima = torch.tensor(surface.minima)
    ax.plot(
        minima[:, 0],
        minima[:, 1],
        "*",
        color="gold",
        markeredgecolor="black",
        markersize=14,
        zorder=3,
        label="minimum" if len(minima) == 1 else "minima",
    )
    for i, (label, path) in enumerate(paths.items()):
        path = path.detach().cpu()
        ax.plot(
            path[:, 0],
            path[:, 1],
            "-o",
            color=_color(i),
            markersize=2.5,
            linewidth=1.2,
            label=label,
            zorder=4,
        )
        ax.plot(
            path[0, 0],
            path[0, 1],
            "o",
            color=_color(i),
            markersize=8,
            markerfacecolor="none",
            markeredgewidth=1.5,
            zorder=4,
        )
    ax.set(xlim=surface.xlim, ylim=surface.ylim, xlabel="x", ylabel="y", title=surface.name)
    ax.set_aspect("equal")
    if legend and paths:
        _legend_below(ax, len(paths) + 1)
    return ax


def plot_losses(
    surface: Surface,
    paths: dict[str, Tensor],
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Plot ``f − min`` along each path against the step, on a log scale.

    Args:
        surface: the loss the paths descended.
        paths: ``{label: (n, 2) tensor of points}``, same colours as ``plot_paths``.
        ax: where to draw; a new figure if omitted.

    Returns:
        The axes.
    """
    ax = _axes(ax)
    for i, (label, path) in enumerate(paths.items()):
        gap = surface(path.detach().cpu().double()) - surface.minimum
        # a diverging run is drawn up to 1e30: the log axis's ticks overflow near 1e300
        ax.semilogy(gap.clamp(1e-16, 1e30), color=_color(i), linewidth=1.5, label=label)
    ax.set(xlabel="step", ylabel="loss − minimum", title=f"{surface.name}: loss")
    ax.grid(True, which="major", alpha=0.3)
    _legend_below(ax, len(paths))
    return ax
