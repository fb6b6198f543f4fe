"""Schedulers made of schedulers: one after another, or all at once."""

from bisect import bisect_right

from .base import LRScheduler
from .plateau import is_plateau


def _check_schedulers(owner, schedulers, optimizer):
    if len(schedulers) < 1:
        raise ValueError(f"{owner} expects at least one scheduler, but got no scheduler.")
    for i, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise TypeError(f"{owner} at index {i} should have `optimizer` as its attribute.")
        if is_plateau(scheduler):
            raise ValueError(
                f"{owner} does not support `ReduceLROnPlateau` scheduler as it requires "
                "additional kwargs to be specified when calling `step`, but got one at "
                f"index {i} in the given schedulers sequence."
            )
        if scheduler.optimizer != optimizer:
            raise ValueError(
                f"{owner} expects all schedulers to belong to the same optimizer, but got "
                f"scheduler {type(scheduler).__name__} at index {i} with a different one."
            )


class _Composite(LRScheduler):
    """A scheduler that drives the schedulers in ``self._schedulers``."""

    def state_dict(self):
        """Every attribute but the optimizer, with the inner schedulers' state_dicts."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        for scheduler, saved in zip(self._schedulers, state.pop("_schedulers"), strict=True):
            scheduler.load_state_dict(saved)
        self.__dict__.update(state)


class SequentialLR(_Composite):
    """Hand the schedule from one scheduler to the next at each milestone.

        schedulers[i] is in charge for milestones[i−1] ≤ t < milestones[i]

    At milestone m the next scheduler restarts at its own step 0, computed from
    its closed form on base_lrs when it has one (so it starts from the initial lr,
    not from where the previous scheduler left it), otherwise from ``get_lr()``.

    The schedulers were created first, each taking its initial step; the
    constructor undoes those steps (``last_epoch − 1``, recursively through
    nested SequentialLRs), resets every lr to ``initial_lr`` and takes the
    initial step of the scheduler that is in charge at step 0.

    Args:
        optimizer (Optimizer): wrapped optimizer.
        schedulers (list): the schedulers, all on this optimizer (ours or
            torch's; not ReduceLROnPlateau).
        milestones (list of int): the steps at which the next scheduler takes
            over; one fewer than the schedulers.
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        _check_schedulers(type(self).__name__, schedulers, optimizer)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more "
                f"than the number of milestone points, but got number of schedulers "
                f"{len(schedulers)} and the number of milestones to be equal to "
                f"{len(milestones)}"
            )
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self.recursive_undo()
        current = self._schedulers[bisect_right(milestones, 0)]
        current._initial_step()
        self._last_lr = current.get_last_lr()

    def recursive_undo(self, sched=None):
        """Take back the initial step of every scheduler inside, however nested."""
        sched = self if sched is None else sched
        if hasattr(sched, "_schedulers"):
            for inner in sched._schedulers:
                self.recursive_undo(inner)
        elif hasattr(sched, "last_epoch"):
            sched.last_epoch -= 1

    def step(self):
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Step several schedulers together: their (recursive) factors multiply.

        each step(): schedulers[0].step(); schedulers[1].step(); ...

    Args:
        schedulers (list): the schedulers, all on one optimizer (ours or torch's;
            not ReduceLROnPlateau).
        optimizer (Optimizer): wrapped optimizer; default: that of schedulers[0].
    """

    def __init__(self, schedulers, optimizer=None):
        if len(schedulers) >= 1:
            optimizer = optimizer or schedulers[0].optimizer
        _check_schedulers(type(self).__name__, schedulers, optimizer)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def step(self):
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
