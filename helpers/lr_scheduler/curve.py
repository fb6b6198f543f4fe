"""The learning rates a schedule produces, without a model: for plots and checks."""

import torch

from .plateau import is_plateau


def lr_curve(make_scheduler, steps, lr=0.1, metrics=None):
    """The lr used at each of ``steps`` optimizer steps under a schedule.

    Builds a throwaway parameter and ``torch.optim.SGD(lr=lr)``, calls
    ``make_scheduler(optimizer)`` and then, ``steps`` times: records
    ``param_groups[0]["lr"]``, steps the optimizer (a no-op: there is no
    gradient, but torch's schedulers expect it first) and steps the scheduler.

        lr_curve(lambda opt: StepLR(opt, step_size=30), 100)           # 100 floats
        lr_curve(lambda opt: ReduceLROnPlateau(opt, patience=2), 10,
                 metrics=[1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8])

    Args:
        make_scheduler (callable): ``optimizer -> scheduler``, ours or torch's.
        steps (int): number of optimizer steps.
        lr (float): the optimizer's learning rate (the schedulers' lr_0).
            Default: 0.1.
        metrics (sequence of float): one metric per step, passed to
            ``scheduler.step``; required for ReduceLROnPlateau, otherwise must be
            None. Default: None.
    """
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(optimizer)
    needs_metrics = is_plateau(scheduler)
    if needs_metrics and (metrics is None or len(metrics) < steps):
        raise ValueError(
            f"ReduceLROnPlateau steps on a metric: pass metrics=[...] with "
            f"at least {steps} values (one per step)"
        )
    if not needs_metrics and metrics is not None:
        raise ValueError(f"{type(scheduler).__name__}.step() takes no metric: leave metrics=None")
    lrs = []
    for t in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(metrics[t]) if needs_metrics else scheduler.step()
    return lrs
