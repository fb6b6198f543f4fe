"""Warmup-stable-decay (WSD): the "trapezoidal" schedule of large-model training."""

import math

from .base import LRScheduler

_DECAYS = {
    "linear": lambda p: 1 - p,
    "cosine": lambda p: (1 + math.cos(math.pi * p)) / 2,
    "1-sqrt": lambda p: 1 - math.sqrt(p),
}


class WarmupStableDecay(LRScheduler):
    """Linear warmup, a long constant phase, then a short decay to ``min_lr_ratio · lr_0``.

    With W = warmup_steps, S = stable_steps, D = decay_steps, r = min_lr_ratio:

        lr_t = lr_0 · t / W                                 for t < W          (warmup from 0)
        lr_t = lr_0                                         for W ≤ t < W+S    (stable)
        lr_t = lr_0 · (r + (1 − r) · g((t − W − S) / D))    for W+S ≤ t < W+S+D (decay)
        lr_t = lr_0 · r                                     for t ≥ W+S+D

    where g falls from 1 to 0 as p goes from 0 to 1:

        decay="linear":  g(p) = 1 − p
        decay="cosine":  g(p) = (1 + cos(π p)) / 2
        decay="1-sqrt":  g(p) = 1 − √p      (Hägele et al. found it the best)

    The stable phase needs no fixed end: a run can branch off a decay from any
    checkpoint of it, which is why WSD suits training whose length is not known
    in advance. The lr is a closed form on base_lrs (like LambdaLR), so this
    scheduler overrides, rather than composes with, another one on the same
    optimizer. The floor is a ratio so that param groups with different lrs
    keep their proportions. Not part of torch; like Hugging Face's
    ``transformers.get_wsd_schedule``, the warmup starts from 0 and the floor is
    a ratio (``min_lr_ratio``).

    Hu et al., "MiniCPM: Unveiling the Potential of Small Language Models with
    Scalable Training Strategies", 2024, https://arxiv.org/abs/2404.06395
    Hägele et al., "Scaling Laws and Compute-Optimal Training Beyond Fixed
    Training Durations", NeurIPS 2024, https://arxiv.org/abs/2405.18392

    Args:
        optimizer (Optimizer): wrapped optimizer.
        warmup_steps (int): steps of linear warmup from 0 to lr_0 (W ≥ 0).
        stable_steps (int): steps at lr_0 (S ≥ 0).
        decay_steps (int): steps of the decay (D ≥ 0).
        min_lr_ratio (float): final lr as a fraction of lr_0, in [0, 1].
            Default: 0.0.
        decay (str): shape of the decay: "linear", "cosine" or "1-sqrt".
            Default: "linear".
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(
        self,
        optimizer,
        warmup_steps,
        stable_steps,
        decay_steps,
        min_lr_ratio=0.0,
        decay="linear",
        last_epoch=-1,
    ):
        for name, value in (
            ("warmup_steps", warmup_steps),
            ("stable_steps", stable_steps),
            ("decay_steps", decay_steps),
        ):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"Expected non-negative integer {name}, but got {value}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"Expected min_lr_ratio in [0, 1], but got {min_lr_ratio}")
        if decay not in _DECAYS:
            raise ValueError(f"decay must be one of {sorted(_DECAYS)}, but got {decay!r}")
        self.warmup_steps = warmup_steps
        self.stable_steps = stable_steps
        self.decay_steps = decay_steps
        self.min_lr_ratio = min_lr_ratio
        self.decay = decay
        super().__init__(optimizer, last_epoch)

    def factor(self, t):
        """lr_t / lr_0 at step t."""
        decay_start = self.warmup_steps + self.stable_steps
        if t < self.warmup_steps:
            return t / self.warmup_steps
        if t < decay_start:
            return 1.0
        if t < decay_start + self.decay_steps:
            g = _DECAYS[self.decay]((t - decay_start) / self.decay_steps)
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * g
        return self.min_lr_ratio

    def get_lr(self):
        return [lr_0 * self.factor(self.last_epoch) for lr_0 in self.base_lrs]
