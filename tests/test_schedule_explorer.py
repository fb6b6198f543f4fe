"""The schedule explorer: its code strings build torch's schedulers, its controls redraw."""

import base64

import matplotlib
import pytest
from torch.optim import lr_scheduler as S

from helpers.lr_scheduler import WarmupStableDecay, lr_curve
from helpers.schedule_explorer import SCHEDULES, ScheduleExplorer, plot_schedule

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"

# Each schedule at its default settings, 100 steps, written out by hand.
BY_HAND = {
    "StepLR": lambda o: S.StepLR(o, step_size=30, gamma=0.1),
    "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[50, 75], gamma=0.1),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.95),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=100),
    "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=20),
    "LinearLR": lambda o: S.LinearLR(o, start_factor=0.1, total_iters=20),
    "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=100, power=2.0),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=100),
    "CyclicLR": lambda o: S.CyclicLR(o, base_lr=0.001, max_lr=0.1, step_size_up=10),
    "warmup → cosine (SequentialLR)": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.01, total_iters=10), S.CosineAnnealingLR(o, T_max=90)],
        milestones=[10]),
    "WarmupStableDecay (helpers)": lambda o: WarmupStableDecay(o, 10, 70, 20, decay="1-sqrt"),
}


def test_every_schedule_is_covered():
    assert set(SCHEDULES) == set(BY_HAND)


@pytest.mark.parametrize("name", list(BY_HAND))
def test_defaults_give_the_scheduler_written_by_hand(name):
    schedule = SCHEDULES[name]
    assert schedule.lrs(100, 0.1, **schedule.defaults()) == pytest.approx(lr_curve(BY_HAND[name], 100))


def test_source_follows_the_settings():
    schedule = SCHEDULES["warmup → cosine (SequentialLR)"]
    assert schedule.source(200, warmup=25, start_factor=0.1) == (
        "SequentialLR(optimizer, [LinearLR(optimizer, start_factor=0.1, total_iters=25), "
        "CosineAnnealingLR(optimizer, T_max=175)], milestones=[25])"
    )


def test_display_bundle_has_widget_picture_and_text():
    explorer = ScheduleExplorer()
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(PNG)
    assert bundle["text/plain"] == f"ScheduleExplorer: {explorer.source()}"
    assert bundle["text/plain"] == ScheduleExplorer()._repr_mimebundle_()["text/plain"]


def test_choosing_a_scheduler_shows_its_controls_and_redraws():
    explorer = ScheduleExplorer()
    explorer.menu.value = "StepLR"
    assert [c.description for c in explorer.params.children] == ["step_size", "gamma"]
    before = explorer.output.outputs
    explorer.controls["StepLR"]["step_size"].value = 10
    assert "step_size=10" in explorer.code.value
    assert explorer.output.outputs != before
    (shown,) = explorer.output.outputs
    assert base64.b64decode(shown["data"]["image/png"]).startswith(PNG)
    assert shown["data"]["text/plain"] == "StepLR(optimizer, step_size=10, gamma=0.1)"


def test_steps_and_lr_reach_the_curve():
    explorer = ScheduleExplorer(schedule="CosineAnnealingLR", steps=50, lr=0.5)
    lrs = explorer.lrs()
    assert len(lrs) == 50 and lrs[0] == pytest.approx(0.5)


def test_invalid_settings_show_the_error_instead_of_raising():
    explorer = ScheduleExplorer(schedule="WarmupStableDecay (helpers)")
    explorer.controls["WarmupStableDecay (helpers)"]["warmup_steps"].value = 90  # 90 + 20 > 100
    assert "ValueError" in explorer.code.value
    assert explorer.output.outputs == ()
    assert "image/png" not in explorer._repr_mimebundle_()


def test_plot_schedule_draws_a_staircase():
    ax = plot_schedule([0.1, 0.1, 0.05], title="t")
    (stairs,) = ax.patches
    assert list(stairs.get_data().values) == [0.1, 0.1, 0.05]
    assert ax.get_xlim() == (0, 3) and ax.get_ylim()[0] == 0 and ax.get_title() == "t"
    assert plot_schedule([1.0, 0.1], log=True).get_yscale() == "log"
    matplotlib.pyplot.close("all")


def test_plot_schedule_labels_its_curve_for_a_legend():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plot_schedule([0.1, 0.05], ax=ax, label="yours")
    ax.stairs([0.1, 0.05], range(3), label="reference")
    assert [text.get_text() for text in ax.legend().get_texts()] == ["yours", "reference"]
    plt.close(fig)
