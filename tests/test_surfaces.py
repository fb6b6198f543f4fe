"""helpers.surfaces and helpers.plotting: the minima are minima, paths are what the optimizer did."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from helpers.plotting import COLORS, plot_losses, plot_paths
from helpers.surfaces import RAVINE, ROSENBROCK, SADDLE, SURFACES, trajectory

ALL = list(SURFACES.values())


def _grad_and_hessian(surface, point):
    xy = torch.tensor(point, dtype=torch.float64)
    grad = torch.autograd.functional.jacobian(surface, xy)
    hessian = torch.autograd.functional.hessian(surface, xy)
    return grad, hessian


@pytest.mark.parametrize("surface", ALL, ids=lambda s: s.name)
def test_every_listed_minimum_is_a_strict_local_minimum_with_the_lowest_value(surface):
    for point in surface.minima:
        grad, hessian = _grad_and_hessian(surface, point)
        assert grad.abs().max() < 1e-8, (point, grad)
        assert torch.linalg.eigvalsh(hessian).min() > 0, (point, hessian)
        assert surface(torch.tensor(point, dtype=torch.float64)) == pytest.approx(
            surface.minimum, abs=1e-10
        )


@pytest.mark.parametrize("surface", ALL, ids=lambda s: s.name)
def test_no_grid_point_in_the_window_is_lower_than_the_minimum(surface):
    x = torch.linspace(*surface.xlim, 301, dtype=torch.float64)
    y = torch.linspace(*surface.ylim, 301, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)
    assert surface(grid).min() >= surface.minimum - 1e-12


@pytest.mark.parametrize("surface", ALL, ids=lambda s: s.name)
def test_the_start_and_the_minima_lie_inside_the_window(surface):
    for x, y in (surface.start, *surface.minima):
        assert surface.xlim[0] < x < surface.xlim[1]
        assert surface.ylim[0] < y < surface.ylim[1]


def test_the_ravine_is_a_quadratic_with_condition_number_20():
    _, hessian = _grad_and_hessian(RAVINE, (0.3, -0.7))
    assert torch.allclose(hessian, torch.diag(torch.tensor([1.0, 20.0], dtype=torch.float64)))


def test_the_saddle_has_a_saddle_point_at_the_origin():
    grad, hessian = _grad_and_hessian(SADDLE, (0.0, 0.0))
    eigenvalues = torch.linalg.eigvalsh(hessian)
    assert grad.abs().max() == 0 and eigenvalues[0] < 0 < eigenvalues[1]


def test_surfaces_evaluate_batches_of_points_elementwise():
    points = torch.randn(4, 3, 2)
    values = ROSENBROCK(points)
    assert values.shape == (4, 3)
    assert values[2, 1] == ROSENBROCK(points[2, 1])


def test_trajectory_records_the_start_and_every_gradient_step():
    lr = 0.03
    path = trajectory(RAVINE, lambda p: torch.optim.SGD(p, lr=lr), steps=3, start=(2.0, 1.0))
    # gradient descent on 0.5·(x² + 20y²) scales x by (1 − lr) and y by (1 − 20·lr) per step
    k = torch.arange(4.0)
    expected = torch.stack([2.0 * (1 - lr) ** k, 1.0 * (1 - 20 * lr) ** k], dim=1)
    assert torch.allclose(path, expected)


def test_trajectory_works_with_optimizers_that_need_a_closure():
    path = trajectory(ROSENBROCK, lambda p: torch.optim.LBFGS(p), steps=10)
    assert torch.allclose(path[-1], torch.tensor([1.0, 1.0]), atol=1e-4)


class _SilentSGD(torch.optim.SGD):
    """SGD whose step() returns None, as a hand-written optimizer's may."""

    def step(self, closure=None):
        super().step(closure)


@pytest.mark.parametrize("make", [lambda p: torch.optim.SGD(p, lr=1.0), lambda p: _SilentSGD(p, lr=1.0)],
                         ids=["returns the loss", "returns None"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_diverging_run_stops_at_the_last_finite_point(make, dtype):
    path = trajectory(RAVINE, make, steps=500, dtype=dtype)
    # closed form: y is multiplied by 1 − 20·lr = −19 every step, until its loss overflows
    y = [1.0]
    while torch.isfinite(RAVINE(torch.tensor([0.0, -19.0 * y[-1]], dtype=dtype))):
        y.append(-19.0 * y[-1])
    assert path.dtype == dtype and len(path) == len(y) < 501
    assert torch.allclose(path[:, 1], torch.tensor(y, dtype=dtype))
    assert torch.isfinite(RAVINE(path)).all()


def test_plots_draw_one_coloured_line_per_path():
    paths = {
        "SGD": trajectory(RAVINE, lambda p: torch.optim.SGD(p, lr=0.05), 10),
        "momentum": trajectory(RAVINE, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 10),
    }
    fig, (left, right) = plt.subplots(1, 2)
    plot_paths(RAVINE, paths, ax=left)
    plot_losses(RAVINE, paths, ax=right)
    for ax in (left, right):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert [lines[name].get_color() for name in paths] == list(COLORS[:2])
    assert len(lines["SGD"].get_ydata()) == 11
    plt.close(fig)


def test_legends_sit_below_the_axes_off_the_paths():
    paths = {"SGD": trajectory(RAVINE, lambda p: torch.optim.SGD(p, lr=0.05), 10)}
    fig, (left, middle, right) = plt.subplots(1, 3)
    plot_paths(RAVINE, paths, ax=left)
    plot_paths(RAVINE, paths, ax=middle, legend=False)
    plot_losses(RAVINE, paths, ax=right)
    fig.canvas.draw()
    for ax in (left, right):
        legend, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend.y1 <= frame.y0  # entirely under the plotting area
    assert middle.get_legend() is None
    plt.close(fig)
