"""Reference optimizers, drop-in for ``torch.optim``.

Each class lives in its own module and reads like the math: a docstring with
the update rule, then one plain loop over the parameters. Same names,
arguments, defaults, state keys and numbers as ``torch.optim`` (Schedule-Free:
as the ``schedulefree`` package). ``swa_utils`` is a submodule, as in torch:
weight averaging (SWA, EMA), ``SWALR`` and ``update_bn``.
"""

from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .asgd import ASGD
from .lbfgs import LBFGS
from .lion import Lion
from .muon import Muon
from .nadam import NAdam
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .schedulefree import AdamWScheduleFree, SGDScheduleFree
from .sgd import SGD
from . import swa_utils

__all__ = [
    "ASGD",
    "LBFGS",
    "SGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "AdamWScheduleFree",
    "Adamax",
    "Lion",
    "Muon",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SGDScheduleFree",
    "swa_utils",
]
