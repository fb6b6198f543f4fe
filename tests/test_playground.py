"""The playground: settings build helpers.optim's optimizers, outcomes describe runs, the panel redraws."""

import base64

import matplotlib
import pytest
import torch

from helpers import optim
from helpers.playground import OPTIMIZERS, Outcome, Playground, Setting
from helpers.surfaces import RAVINE, ROSENBROCK, SADDLE, SURFACES, trajectory
from helpers.widgets import PicturePanel

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"

# Each optimizer with lr 0.1 and the knobs at 0.8 / 0.95 / 0.2, written out by hand.
BY_HAND = {
    "SGD": ("SGD(params, lr=0.1)", lambda p: optim.SGD(p, lr=0.1)),
    "momentum": ("SGD(params, lr=0.1, momentum=0.8)", lambda p: optim.SGD(p, lr=0.1, momentum=0.8)),
    "Nesterov": ("SGD(params, lr=0.1, momentum=0.8, nesterov=True)",
                 lambda p: optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True)),
    "RMSprop": ("RMSprop(params, lr=0.1, alpha=0.95)", lambda p: optim.RMSprop(p, lr=0.1, alpha=0.95)),
    "Adam": ("Adam(params, lr=0.1, betas=(0.8, 0.95))", lambda p: optim.Adam(p, lr=0.1, betas=(0.8, 0.95))),
    "AdamW": ("AdamW(params, lr=0.1, betas=(0.8, 0.95), weight_decay=0.2)",
              lambda p: optim.AdamW(p, lr=0.1, betas=(0.8, 0.95), weight_decay=0.2)),
}


def test_every_optimizer_is_covered():
    assert set(OPTIMIZERS) == set(BY_HAND)


@pytest.mark.parametrize("name", list(BY_HAND))
def test_setting_shows_and_builds_the_optimizer_written_by_hand(name):
    setting = Setting(name, lr=0.1, momentum=0.8, beta2=0.95, weight_decay=0.2)
    source, by_hand = BY_HAND[name]
    assert setting.source() == source
    ours, theirs = trajectory(SADDLE, setting, 20), trajectory(SADDLE, by_hand, 20)
    assert torch.equal(ours, theirs)


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="unknown optimizer 'Adagrad'"):
        Setting("Adagrad", lr=0.1)


def test_outcome_of_a_converging_run():
    path = trajectory(RAVINE, Setting("momentum", lr=0.1, momentum=0.4), 30)
    outcome = Outcome.of(RAVINE, path, 30)
    assert outcome.diverged_at is None
    assert outcome.distance == pytest.approx(path[-1].norm().item())
    assert outcome.distances[0] == pytest.approx(math_hypot(*RAVINE.start))
    assert outcome.reached(0.01) == next(k for k, p in enumerate(path) if p.norm() <= 0.01)
    assert str(outcome).startswith("after 30 steps: 7.43e-03 from the nearest minimum")


def math_hypot(x, y):
    return (x * x + y * y) ** 0.5


def test_outcome_names_zig_zag_growth_and_divergence():
    # Plain SGD at lr 0.09: y is multiplied by 1 − 20·0.09 = −0.8 every step, so it flips every step.
    sgd = Outcome.of(RAVINE, trajectory(RAVINE, Setting("SGD", lr=0.09), 30), 30)
    assert sgd.flips == (0, 29) and sgd.zigzag() == "y"
    assert "y zig-zags (reverses in 29 of 29 steps)" in str(sgd)
    # lr 0.11: |1 − 2.2| = 1.2 > 1, the loss grows without overflowing in 30 steps.
    grows = Outcome.of(RAVINE, trajectory(RAVINE, Setting("SGD", lr=0.11), 30), 30)
    assert grows.diverged_at is None and "(it grew from" in str(grows)
    # Rosenbrock's walls overflow SGD at lr 0.01 within a few steps.
    path = trajectory(ROSENBROCK, Setting("SGD", lr=0.01), 30)
    boom = Outcome.of(ROSENBROCK, path, 30)
    assert boom.diverged_at == len(path) <= 30
    assert str(boom).startswith(f"diverged: the loss overflowed at step {len(path)}")


def test_panel_draws_the_default_and_redraws_on_change():
    panel = Playground()
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(PNG)
    assert bundle["text/plain"] == "Playground: SGD(params, lr=0.05, momentum=0.9) on ravine, 100 steps"
    before = panel.output.outputs

    panel.optimizer.value = "Adam"
    assert "Adam(params, lr=0.05, betas=(0.9, 0.999))" in panel.code.value
    assert panel.weight_decay.disabled and not panel.momentum.disabled and not panel.beta2.disabled
    assert panel.output.outputs != before

    panel.lr.value = 0.1
    panel.surface.value = "Rosenbrock"
    (shown,) = panel.output.outputs
    assert base64.b64decode(shown["data"]["image/png"]).startswith(PNG)
    assert shown["data"]["text/plain"] == (
        "Playground: Adam(params, lr=0.1, betas=(0.9, 0.999)) on Rosenbrock, 100 steps")
    path, outcome = panel.run()
    expected = trajectory(ROSENBROCK, lambda p: optim.Adam(p, lr=0.1), 100, dtype=torch.float64)
    assert torch.equal(path, expected)
    assert str(outcome) in panel.code.value.replace("&#x27;", "'")


def test_a_run_that_diverges_to_a_huge_loss_is_drawn():
    """Momentum SGD leaves Himmelblau's bowl: its last finite loss is ~1e261, beyond what a log
    axis can put ticks on, so the loss curve stops at 1e30 and the panel still redraws."""
    panel = Playground(surface="Himmelblau", optimizer="momentum", lr=0.05, momentum=0.9)
    path, outcome = panel.run()
    assert outcome.diverged_at and SURFACES["Himmelblau"](path[-1]) > 1e200
    (shown,) = panel.output.outputs
    assert base64.b64decode(shown["data"]["image/png"]).startswith(PNG)
    assert "diverged" in panel.code.value


def test_sgd_greys_out_every_knob_and_the_lr_is_shown_rounded():
    panel = Playground(optimizer="SGD", lr=10**-1.3)
    assert all(getattr(panel, k).disabled for k in ("momentum", "beta2", "weight_decay"))
    assert panel.setting() == Setting("SGD", lr=0.0501)
    assert "SGD(params, lr=0.0501)" in panel.code.value


def test_picture_panel_without_a_picture_has_no_png():
    class Empty(PicturePanel):
        pass

    panel = Empty([])
    assert "image/png" not in panel._repr_mimebundle_()
    assert panel._repr_mimebundle_()["text/plain"] == "Empty"
    matplotlib.pyplot.close("all")
