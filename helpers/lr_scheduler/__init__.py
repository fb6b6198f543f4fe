"""Reference learning-rate schedulers, drop-in for ``torch.optim.lr_scheduler``.

Same class names, arguments, defaults, numbers and state_dict keys as torch
2.13, so ours and torch's can be mixed, chained and resumed from each other's
checkpoints. Each docstring gives the formula; ``base.LRScheduler`` is the
whole mechanism in ~40 lines. Not in torch: ``WarmupStableDecay`` and
``lr_curve`` (a schedule's learning rates, for plotting).

    base.py                 LRScheduler
    decay.py                LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ConstantLR,
                            LinearLR, ExponentialLR, PolynomialLR, CosineAnnealingLR
    cyclic.py               CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
    plateau.py              ReduceLROnPlateau
    compose.py              SequentialLR, ChainedScheduler
    warmup_stable_decay.py  WarmupStableDecay
    curve.py                lr_curve
"""

from .base import LRScheduler
from .compose import ChainedScheduler, SequentialLR
from .curve import lr_curve
from .cyclic import CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from .decay import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiplicativeLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)
from .plateau import ReduceLROnPlateau
from .warmup_stable_decay import WarmupStableDecay

__all__ = [
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
    "WarmupStableDecay",
    "lr_curve",
]
