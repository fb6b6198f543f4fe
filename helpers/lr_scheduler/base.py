"""The scheduler base class: a step counter that rewrites ``group["lr"]``."""

import types
import warnings

from torch.optim import Optimizer

# torch's own text (torch.optim.lr_scheduler.EPOCH_DEPRECATION_WARNING), so filters match.
EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being "
    "deprecated where possible. Please use `scheduler.step()` to step the "
    "scheduler. During the deprecation, if epoch is different from None, the "
    "closed form is used instead of the new chainable form, where available. "
    "Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)


class LRScheduler:
    """Base class of every scheduler: subclasses say how the lr changes in ``get_lr``.

    A scheduler owns one counter, ``last_epoch``: the index of the step whose
    learning rates are in the optimizer right now. ``step()`` advances it by one,
    asks ``get_lr()`` for the new rates and writes them into
    ``optimizer.param_groups[i]["lr"]``::

        for epoch in range(n):
            train(...)            # optimizer.step() uses the lr of step `last_epoch`
            scheduler.step()      # last_epoch += 1; group["lr"] = get_lr()[i]

    Most ``get_lr`` are *recursive*, like torch's: they multiply the current
    ``group["lr"]`` by a factor, so several schedulers can act on one optimizer
    (``ChainedScheduler``). A few also have a closed form on ``base_lrs``.

    The constructor

    * stores ``group["initial_lr"] = group["lr"]`` in each param group (it keeps
      an existing value); ``base_lrs`` are these initial lrs. When resuming
      (``last_epoch >= 0``) the groups must already hold ``initial_lr``, e.g. from
      ``optimizer.load_state_dict``, else ``KeyError``;
    * takes the initial step, from ``last_epoch`` to ``last_epoch + 1``, so after
      ``Scheduler(opt)`` the optimizer holds the lr of step 0. During this step
      ``self._is_initial`` is True: recursive schedulers that are resuming keep the
      lr they find instead of applying their factor a second time.

    ``state_dict()`` is every attribute but the optimizer, with the same keys as
    torch, so our schedulers and torch's load each other's checkpoints.

    Args:
        optimizer (Optimizer): the optimizer whose learning rates are scheduled.
        last_epoch (int): index of the last step taken; ``-1`` (default) starts
            the schedule, other values are for resuming. Default: -1.

    ``step(epoch)``, deprecated in torch, works as there: it warns with torch's
    ``EPOCH_DEPRECATION_WARNING``, sets ``last_epoch = epoch`` and takes the closed
    form where the class has one (else ``get_lr()``).

    Left out on purpose, compared with ``torch.optim.lr_scheduler.LRScheduler``:
    the warning when ``scheduler.step()`` comes before ``optimizer.step()``
    (torch wraps ``optimizer.step`` to detect it), the warning when ``get_lr()`` is
    called directly, and tensor learning rates (``group["lr"]`` is a float here).
    """

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(
                    f"param 'initial_lr' is not specified in param_groups[{i}] when "
                    f"resuming a scheduler with last_epoch={last_epoch}: load the "
                    "optimizer's state_dict before creating the scheduler"
                )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """Take the constructor's step (``SequentialLR`` calls it again)."""
        self._is_initial = True
        self.step()
        self._is_initial = False

    def get_lr(self):
        """The learning rate of each param group at step ``last_epoch``."""
        raise NotImplementedError

    def step(self, epoch=None):
        """Advance to the next step and set its learning rates.

        ``epoch`` (deprecated, as in torch): jump to step ``epoch`` instead.
        """
        if epoch is None:
            self.last_epoch += 1
            self._set_lrs(self.get_lr())
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
            self._update_lr(epoch)

    def _update_lr(self, epoch):
        """Jump to step ``epoch``: ``step(epoch)``, and ``SequentialLR`` restarting a
        scheduler at 0.

        Uses the closed form on ``base_lrs`` when the class has one, as torch does.
        """
        self.last_epoch = epoch
        closed_form = getattr(self, "_get_closed_form_lr", self.get_lr)
        self._set_lrs(closed_form())

    def _set_lrs(self, lrs):
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The learning rates the last ``step()`` set, one per param group."""
        return self._last_lr

    def state_dict(self):
        """Every attribute but the optimizer."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore the attributes saved by ``state_dict()`` (ours or torch's)."""
        self.__dict__.update(state_dict)


def per_group(name, optimizer, value):
    """``value`` for each param group: a list of the right length, or one value repeated."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. {name} has "
                f"{len(value)} values, param_groups has {len(optimizer.param_groups)}."
            )
        return list(value)
    return [value] * len(optimizer.param_groups)


def callable_state(fn):
    """What a checkpoint keeps of a user function: a callable object's attributes.

    Plain functions and lambdas cannot be pickled reliably, so they are saved as None
    and the scheduler that loads the checkpoint keeps its own.
    """
    return None if isinstance(fn, types.FunctionType) else fn.__dict__.copy()
