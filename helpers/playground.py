"""The optimizer playground: run an optimizer on a test surface and see where it went.

    setting = Setting("Adam", lr=0.1, beta2=0.9)
    setting.source()                       # 'Adam(params, lr=0.1, betas=(0.9, 0.9))'
    path = trajectory(ROSENBROCK, setting, steps=300)
    print(Outcome.of(ROSENBROCK, path, steps=300))   # how close it got, and how
    Playground()                           # last expression of a cell: the interactive panel

The panel is an ``ipywidgets`` panel (a :class:`helpers.widgets.PicturePanel`): a
surface, an optimizer, a log-scale learning-rate slider, momentum/β₁, β₂ (RMSprop's
α), AdamW's weight decay and the number of steps. Every change reruns the
optimizer and redraws its path over the contour lines and its loss curve. Where
no widget frontend runs, the cell shows a picture of the current settings.
"""

import html
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from . import optim
from .plotting import plot_losses, plot_paths
from .surfaces import SURFACES, Surface, trajectory
from .widgets import PicturePanel

__all__ = ["OPTIMIZERS", "Outcome", "Playground", "Setting"]

# The optimizers on offer, and which of the shared knobs each one uses.
OPTIMIZERS = {
    "SGD": (),
    "momentum": ("momentum",),
    "Nesterov": ("momentum",),
    "RMSprop": ("beta2",),
    "Adam": ("momentum", "beta2"),
    "AdamW": ("momentum", "beta2", "weight_decay"),
}


def _short(value):
    """A number as it appears in code: 0.05, 0.999, 1e-05."""
    return f"{value:.4g}"


@dataclass(frozen=True)
class Setting:
    """An optimizer of ``helpers.optim`` with its hyperparameters; call it on a parameter list.

    Args:
        optimizer: a key of ``OPTIMIZERS``. "momentum" and "Nesterov" are SGD with
            ``momentum`` (and ``nesterov=True``).
        lr: the learning rate.
        momentum: SGD's momentum μ, and β₁ of Adam and AdamW.
        beta2: β₂ of Adam and AdamW, ``alpha`` of RMSprop (both average the squared gradient).
        weight_decay: AdamW's decoupled weight decay.
    """

    optimizer: str
    lr: float
    momentum: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.01

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {list(OPTIMIZERS)}")

    @property
    def cls(self):
        return {"SGD": optim.SGD, "momentum": optim.SGD, "Nesterov": optim.SGD,
                "RMSprop": optim.RMSprop, "Adam": optim.Adam, "AdamW": optim.AdamW}[self.optimizer]

    def kwargs(self):
        """The constructor's keyword arguments."""
        name, kwargs = self.optimizer, {"lr": self.lr}
        if name in ("momentum", "Nesterov"):
            kwargs["momentum"] = self.momentum
        if name == "Nesterov":
            kwargs["nesterov"] = True
        if name == "RMSprop":
            kwargs["alpha"] = self.beta2
        if name in ("Adam", "AdamW"):
            kwargs["betas"] = (self.momentum, self.beta2)
        if name == "AdamW":
            kwargs["weight_decay"] = self.weight_decay
        return kwargs

    def source(self):
        """The code that builds this optimizer, e.g. ``SGD(params, lr=0.05, momentum=0.9)``."""

        def show(value):
            if isinstance(value, tuple):
                return "(" + ", ".join(map(show, value)) + ")"
            return value if isinstance(value, bool) else _short(value)

        arguments = ", ".join(f"{key}={show(value)}" for key, value in self.kwargs().items())
        return f"{self.cls.__name__}(params, {arguments})"

    def __call__(self, params):
        return self.cls(params, **self.kwargs())


@dataclass(frozen=True)
class Outcome:
    """How a run of ``steps`` optimizer steps on a surface went.

    Attributes:
        steps: the steps asked for.
        diverged_at: the first step whose loss was not finite (``None``: it stayed finite).
        distances: the distance of every point of the path to the nearest minimum.
        gaps: loss − minimum at the first and at the last point.
        flips: ``(x, y)``: in how many steps each coordinate moved opposite to its previous move.
    """

    steps: int
    diverged_at: int | None
    distances: tuple[float, ...]
    gaps: tuple[float, float]
    flips: tuple[int, int]

    @classmethod
    def of(cls, surface: Surface, path: torch.Tensor, steps: int):
        """The outcome of ``path = trajectory(surface, …, steps)``."""
        path = path.detach().double()
        minima = torch.tensor(surface.minima, dtype=torch.float64)
        distances = (path[:, None, :] - minima).norm(dim=-1).min(dim=-1).values
        moves = path.diff(dim=0).sign()
        flips = (moves[1:] * moves[:-1] < 0).sum(dim=0)
        return cls(
            steps=steps,
            diverged_at=len(path) if len(path) <= steps else None,
            distances=tuple(distances.tolist()),
            gaps=(float(surface(path[0]) - surface.minimum), float(surface(path[-1]) - surface.minimum)),
            flips=(int(flips[0]), int(flips[1])),
        )

    @property
    def distance(self):
        """The last point's distance to the nearest minimum."""
        return self.distances[-1]

    @property
    def closest(self):
        """(distance, step) of the point nearest to a minimum."""
        return min((d, k) for k, d in enumerate(self.distances))

    def reached(self, eps):
        """The first step after which the point is within ``eps`` of a minimum (``None``: never)."""
        return next((k for k, d in enumerate(self.distances) if d <= eps), None)

    def zigzag(self):
        """The coordinate ("x" or "y") that reverses its direction in most steps, if over half do."""
        moves = len(self.distances) - 2
        count, axis = max(zip(self.flips, "xy"))
        return axis if moves > 0 and count > moves / 2 else None

    def __str__(self):
        if self.diverged_at is not None:
            return (f"diverged: the loss overflowed at step {self.diverged_at} "
                    f"(last finite point {self.distances[-1]:.3g} from the minimum)")
        text = (f"after {self.steps} steps: {self.distance:.2e} from the nearest minimum, "
                f"loss − min {self.gaps[1]:.2e}")
        if self.gaps[1] > self.gaps[0]:
            text += f" (it grew from {self.gaps[0]:.2e})"
        distance, step = self.closest
        if step < self.steps:
            text += f"; closest {distance:.2e} at step {step}"
        axis = self.zigzag()
        if axis:
            flips = self.flips["xy".index(axis)]
            text += f"; {axis} zig-zags (reverses in {flips} of {len(self.distances) - 2} steps)"
        return text


class Playground(PicturePanel):
    """Pick a surface and an optimizer, set its hyperparameters, watch its path.

    Args:
        surface: a key of ``helpers.surfaces.SURFACES``.
        optimizer: a key of ``OPTIMIZERS``.
        lr, momentum, beta2, weight_decay: as in :class:`Setting`.
        steps: the number of optimizer steps, from ``surface.start``.
    """

    def __init__(self, surface="ravine", optimizer="momentum", lr=0.05, momentum=0.9, beta2=0.999,
                 weight_decay=0.01, steps=100):
        style = {"description_width": "100px"}
        slider = {"continuous_update": False, "style": style}
        self.surface = widgets.Dropdown(options=list(SURFACES), value=surface, description="surface",
                                        style=style)
        self.optimizer = widgets.Dropdown(options=list(OPTIMIZERS), value=optimizer,
                                          description="optimizer", style=style)
        self.lr = widgets.FloatLogSlider(value=lr, min=-4, max=0, step=0.1, description="lr",
                                         readout_format=".3g", **slider)
        self.steps = widgets.IntSlider(value=steps, min=10, max=500, step=10, description="steps",
                                       **slider)
        self.momentum = widgets.FloatSlider(value=momentum, min=0.0, max=0.99, step=0.01,
                                            description="momentum/β₁", **slider)
        self.beta2 = widgets.FloatSlider(value=beta2, min=0.5, max=0.999, step=0.001,
                                         readout_format=".3f", description="β₂ (α)", **slider)
        self.weight_decay = widgets.FloatSlider(value=weight_decay, min=0.0, max=0.5, step=0.01,
                                                description="weight_decay", **slider)
        self.code = widgets.HTML()
        controls = (self.surface, self.optimizer, self.lr, self.steps, self.momentum, self.beta2,
                    self.weight_decay)
        for control in controls:
            control.observe(self._changed, names="value")
        super().__init__([
            widgets.HBox([self.surface, self.optimizer]),
            widgets.HBox([self.lr, self.steps]),
            widgets.HBox([self.momentum, self.beta2, self.weight_decay]),
            self.code,
        ])
        self._changed()

    def setting(self):
        """The optimizer as currently set (the lr rounded to 3 digits, as shown)."""
        return Setting(self.optimizer.value, float(f"{self.lr.value:.3g}"), self.momentum.value,
                       self.beta2.value, self.weight_decay.value)

    def run(self):
        """(path, outcome) of the current settings."""
        surface = SURFACES[self.surface.value]
        path = trajectory(surface, self.setting(), self.steps.value, dtype=torch.float64)
        return path, Outcome.of(surface, path, self.steps.value)

    def summary(self):
        return f"Playground: {self.setting().source()} on {self.surface.value}, {self.steps.value} steps"

    def figure(self, path, outcome):
        surface, setting = SURFACES[self.surface.value], self.setting()
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        paths = {setting.optimizer: path}
        plot_paths(surface, paths, ax=left, legend=False)  # the loss panel's legend names the path
        plot_losses(surface, paths, ax=right)
        right.set_xlim(0, self.steps.value)
        fig.suptitle(f"{setting.source()}\n{outcome}", fontsize="small", family="monospace")
        # fixed margins that fit every surface: a redraw takes 40 % less than with tight_layout()
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.22, top=0.8, wspace=0.2)
        return fig

    def _changed(self, change=None):
        uses = OPTIMIZERS[self.optimizer.value]
        for name in ("momentum", "beta2", "weight_decay"):
            getattr(self, name).disabled = name not in uses
        path, outcome = self.run()
        self.show(self.figure(path, outcome), self.summary())
        self.code.value = (f"<code>{html.escape(self.setting().source())}</code><br>"
                           f"{html.escape(str(outcome))}")  # after the picture, which it describes
