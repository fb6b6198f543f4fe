"""Reference optimizers, drop-in for ``torch.optim``.

Each class lives in its own module and reads like the math: a docstring with
the update rule, then one plain loop over the parameters. Same names,
arguments, defaults, state keys and numbers as ``torch.optim``.
"""

from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .lion import Lion
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "NAdam",
    "RAdam",
    "RMSprop",
]
