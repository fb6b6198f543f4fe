"""Stepwise helpers: reference implementations and exercise checks.

    from helpers import check, hint, progress, use
    import helpers.optim, helpers.lr_scheduler

The check functions are loaded on first use, so ``import helpers.optim``
costs no more than the optimizers themselves.
"""

_CHECKING = ("check", "hint", "progress", "use")

__all__ = list(_CHECKING)


def __getattr__(name):
    if name in _CHECKING:
        from . import checking

        return getattr(checking, name)
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
