"""See a learning-rate schedule: one plot style, and an interactive explorer.

    plot_schedule(lrs, ax=ax, title="StepLR")   # one curve, the style of every plot in notebook 06
    ScheduleExplorer()                          # last expression of a cell: pick a scheduler,
                                                # move its sliders, watch its curve

The explorer is an ``ipywidgets.VBox``: a scheduler menu, the total number of
steps, the optimizer's lr, a log-scale switch, the chosen scheduler's own
parameters, the line of code that builds it, and an ``Output`` widget with its
curve. Every change redraws the curve. Where no widget frontend runs (nbval, a
static render of the notebook) the same cell shows a picture of the current
settings instead (see ``helpers.widgets.PicturePanel``).
"""

import html
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
from torch.optim import lr_scheduler

from .lr_scheduler import WarmupStableDecay, lr_curve
from .plotting import COLORS
from .widgets import PicturePanel

__all__ = ["SCHEDULES", "Param", "Schedule", "ScheduleExplorer", "plot_schedule"]


def plot_schedule(lrs, ax=None, title=None, log=False, label=None):
    """Draw the learning rate of every step as a staircase (it is constant within a step).

    Args:
        lrs: the lr of each optimizer step (what ``lr_curve`` returns).
        ax: where to draw; a new 6×3 figure if omitted.
        title: the axes' title.
        log: use a logarithmic lr axis (geometric decays become straight lines).
        label: the curve's name in a legend (``ax.legend()``).

    Returns:
        The axes.
    """
    if ax is None:
        ax = plt.subplots(figsize=(6, 3))[1]
    steps = range(len(lrs) + 1)
    ax.stairs(lrs, steps, color=COLORS[0], linewidth=1.5, baseline=None, label=label)
    ax.set_xlim(0, len(lrs))
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0, top=max(lrs) * 1.08 if max(lrs) > 0 else 1)
    ax.set_xlabel("step")
    ax.set_ylabel("lr")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title, fontsize="medium")
    return ax


@dataclass(frozen=True)
class Param:
    """One keyword argument of a scheduler and the control that sets it.

    ``kind`` is "int" or "float" (a slider from ``low`` to ``high``), "log" (a
    slider over powers of ten, ``low`` and ``high`` are exponents) or "choice"
    (a menu of ``options``).
    """

    name: str
    default: object
    kind: str = "float"
    low: float = 0.0
    high: float = 1.0
    step: float = 0.01
    options: tuple = ()

    def widget(self):
        style = {"description_width": "110px"}
        common = {"description": self.name, "value": self.default, "style": style, "continuous_update": False}
        if self.kind == "int":
            return widgets.IntSlider(min=self.low, max=self.high, step=self.step, **common)
        if self.kind == "float":
            return widgets.FloatSlider(min=self.low, max=self.high, step=self.step, **common)
        if self.kind == "log":
            return widgets.FloatLogSlider(
                min=self.low, max=self.high, step=self.step, readout_format=".1e", **common
            )
        if self.kind == "choice":
            return widgets.Dropdown(
                options=self.options, value=self.default, description=self.name, style=style
            )
        raise ValueError(f"unknown kind {self.kind!r}")


@dataclass(frozen=True)
class Schedule:
    """A scheduler the explorer offers.

    ``code`` is the Python that builds it: a format string over the parameters,
    ``steps`` (the total number of steps) and ``rest``, what ``rest(steps,
    values)`` leaves of the steps (e.g. the steps after a warmup). Its names are
    those of ``NAMESPACE``; ``build`` runs exactly that code, so the code shown
    is the code that drew the curve.
    """

    code: str
    params: tuple[Param, ...]
    rest: Callable[[int, dict], int] | None = None

    def source(self, steps, **values):
        """The code that builds the scheduler with these settings."""
        rest = self.rest(steps, values) if self.rest else None
        shown = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}
        return self.code.format(steps=steps, rest=rest, **shown)

    def build(self, optimizer, steps, **values):
        """The scheduler on ``optimizer`` that ``source(steps, **values)`` describes."""
        namespace = {**NAMESPACE, "optimizer": optimizer}
        return eval(self.source(steps, **values), namespace)  # noqa: S307 (our own fixed templates)

    def lrs(self, steps, lr, **values):
        """The lr of each of ``steps`` optimizer steps."""
        return lr_curve(lambda optimizer: self.build(optimizer, steps, **values), steps, lr=lr)

    def defaults(self):
        return {p.name: p.default for p in self.params}


# The names the code of every Schedule may use: torch's schedulers, and helpers' WSD.
NAMESPACE = {name: getattr(lr_scheduler, name) for name in lr_scheduler.__all__}
NAMESPACE["WarmupStableDecay"] = WarmupStableDecay

_GAMMA = Param("gamma", 0.1, low=0.01, high=1.0)

SCHEDULES = {
    "StepLR": Schedule(
        "StepLR(optimizer, step_size={step_size}, gamma={gamma})",
        (Param("step_size", 30, "int", 1, 200, 1), _GAMMA),
    ),
    "MultiStepLR": Schedule(
        "MultiStepLR(optimizer, milestones=[{first}, {second}], gamma={gamma})",
        (Param("first", 50, "int", 1, 500, 1), Param("second", 75, "int", 1, 500, 1), _GAMMA),
    ),
    "ExponentialLR": Schedule(
        "ExponentialLR(optimizer, gamma={gamma})",
        (Param("gamma", 0.95, low=0.8, high=1.0, step=0.005),),
    ),
    "CosineAnnealingLR": Schedule(
        "CosineAnnealingLR(optimizer, T_max={T_max}, eta_min={eta_min})",
        (Param("T_max", 100, "int", 1, 500, 1), Param("eta_min", 0.0, low=0.0, high=0.1, step=0.001)),
    ),
    "CosineAnnealingWarmRestarts": Schedule(
        "CosineAnnealingWarmRestarts(optimizer, T_0={T_0}, T_mult={T_mult}, eta_min={eta_min})",
        (
            Param("T_0", 20, "int", 1, 200, 1),
            Param("T_mult", 1, "int", 1, 3, 1),
            Param("eta_min", 0.0, low=0.0, high=0.1, step=0.001),
        ),
    ),
    "LinearLR": Schedule(
        "LinearLR(optimizer, start_factor={start_factor}, end_factor={end_factor}, "
        "total_iters={total_iters})",
        (
            Param("start_factor", 0.1, low=0.01, high=1.0),
            Param("end_factor", 1.0, low=0.01, high=1.0),
            Param("total_iters", 20, "int", 1, 500, 1),
        ),
    ),
    "PolynomialLR": Schedule(
        "PolynomialLR(optimizer, total_iters={total_iters}, power={power})",
        (Param("total_iters", 100, "int", 1, 500, 1), Param("power", 2.0, low=0.1, high=5.0, step=0.1)),
    ),
    "OneCycleLR": Schedule(
        "OneCycleLR(optimizer, max_lr={max_lr}, total_steps={steps}, pct_start={pct_start}, "
        "anneal_strategy={anneal_strategy!r}, div_factor={div_factor}, "
        "final_div_factor={final_div_factor})",
        (
            Param("max_lr", 0.1, low=0.01, high=1.0),
            Param("pct_start", 0.3, low=0.05, high=0.95),
            Param("anneal_strategy", "cos", "choice", options=("cos", "linear")),
            Param("div_factor", 25.0, low=1.0, high=100.0, step=1.0),
            Param("final_div_factor", 1e4, "log", 0, 6, 1),
        ),
    ),
    "CyclicLR": Schedule(
        "CyclicLR(optimizer, base_lr={base_lr}, max_lr={max_lr}, step_size_up={step_size_up}, "
        "mode={mode!r}, gamma={gamma})",
        (
            Param("base_lr", 0.001, low=0.0, high=0.1, step=0.001),
            Param("max_lr", 0.1, low=0.01, high=1.0),
            Param("step_size_up", 10, "int", 1, 200, 1),
            Param("mode", "triangular", "choice", options=("triangular", "triangular2", "exp_range")),
            Param("gamma", 0.99, low=0.9, high=1.0, step=0.001),
        ),
    ),
    "warmup → cosine (SequentialLR)": Schedule(
        "SequentialLR(optimizer, [LinearLR(optimizer, start_factor={start_factor}, "
        "total_iters={warmup}), CosineAnnealingLR(optimizer, T_max={rest})], "
        "milestones=[{warmup}])",
        (Param("warmup", 10, "int", 1, 200, 1), Param("start_factor", 0.01, low=0.01, high=1.0)),
        rest=lambda steps, values: steps - values["warmup"],
    ),
    "WarmupStableDecay (helpers)": Schedule(
        "WarmupStableDecay(optimizer, warmup_steps={warmup_steps}, stable_steps={rest}, "
        "decay_steps={decay_steps}, decay={decay!r})",
        (
            Param("warmup_steps", 10, "int", 0, 200, 1),
            Param("decay_steps", 20, "int", 0, 200, 1),
            Param("decay", "1-sqrt", "choice", options=("linear", "cosine", "1-sqrt")),
        ),
        rest=lambda steps, values: steps - values["warmup_steps"] - values["decay_steps"],
    ),
}


class ScheduleExplorer(PicturePanel):
    """Pick a scheduler, set its parameters, see the learning rate of every step.

    Args:
        schedule: the name (a key of ``SCHEDULES``) shown first.
        steps: the total number of optimizer steps.
        lr: the optimizer's learning rate (lr_0).
        log: start with a logarithmic lr axis.
    """

    def __init__(self, schedule="warmup → cosine (SequentialLR)", steps=100, lr=0.1, log=False):
        self.menu = widgets.Dropdown(
            options=list(SCHEDULES),
            value=schedule,
            description="scheduler",
            style={"description_width": "110px"},
            layout={"width": "420px"},
        )
        self.steps = widgets.IntSlider(
            value=steps,
            min=10,
            max=500,
            step=10,
            description="steps",
            continuous_update=False,
            style={"description_width": "110px"},
        )
        self.lr = widgets.FloatLogSlider(
            value=lr,
            min=-4,
            max=0,
            step=0.1,
            description="lr",
            readout_format=".1e",
            continuous_update=False,
            style={"description_width": "110px"},
        )
        self.log_scale = widgets.Checkbox(value=log, description="log-scale lr")
        self.controls = {name: {p.name: p.widget() for p in s.params} for name, s in SCHEDULES.items()}
        self.params = widgets.VBox()
        self.code = widgets.HTML()
        for control in (self.menu, self.steps, self.lr, self.log_scale):
            control.observe(self._changed, names="value")
        for controls in self.controls.values():
            for control in controls.values():
                control.observe(self._changed, names="value")
        super().__init__(
            [
                widgets.HBox([self.menu, self.log_scale]),
                widgets.HBox([self.steps, self.lr]),
                self.params,
                self.code,
            ]
        )
        self._changed()

    @property
    def schedule(self):
        return SCHEDULES[self.menu.value]

    @property
    def values(self):
        """The current parameters of the chosen scheduler."""
        return {name: control.value for name, control in self.controls[self.menu.value].items()}

    def source(self):
        """The code that builds the scheduler as currently set."""
        return self.schedule.source(self.steps.value, **self.values)

    def lrs(self):
        """The lr of every step as currently set (``ValueError`` if the settings are invalid)."""
        return self.schedule.lrs(self.steps.value, self.lr.value, **self.values)

    def figure(self, lrs):
        """A figure of ``lrs``, titled with the code that made them."""
        fig, ax = plt.subplots(figsize=(7, 3))
        plot_schedule(lrs, ax=ax, log=self.log_scale.value)
        ax.set_title(
            "\n".join(textwrap.wrap(self.source(), 90)), fontsize="small", family="monospace", loc="left"
        )
        fig.tight_layout()
        return fig

    def summary(self):
        return f"ScheduleExplorer: {self.source()}"

    def _changed(self, change=None):
        """Show the chosen scheduler's controls and redraw its curve."""
        self.params.children = tuple(self.controls[self.menu.value].values())
        code = f"<code>{html.escape(self.source())}</code>"
        try:
            lrs = self.lrs()
        except (ValueError, ZeroDivisionError) as error:
            self.code.value = (
                f"{code}<br><span style='color:#c62828'>"
                f"{html.escape(f'{type(error).__name__}: {error}')}</span>"
            )
            self.clear()
            return
        self.code.value = code
        self.show(self.figure(lrs), self.source())
