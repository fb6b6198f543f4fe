"""Argument checks shared by the optimizers, with torch.optim's exact messages."""

_LABELS = {"lr": "learning rate", "eps": "epsilon value"}


def nonnegative(**values):
    """Raise ValueError for the first negative value, in the order given."""
    for name, value in values.items():
        if not 0.0 <= value:
            raise ValueError(f"Invalid {_LABELS.get(name, name + ' value')}: {value}")


def betas_in_unit_interval(betas):
    """Raise ValueError unless 0 ≤ β < 1 for each coefficient."""
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
