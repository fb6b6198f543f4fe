"""Schedules that go up and down: warm restarts, cyclical lr, 1cycle.

CyclicLR and OneCycleLR also cycle the momentum (``group["momentum"]``, or
beta1 in ``group["betas"]`` for Adam-like optimizers) opposite to the lr.
"""

import math

from .base import LRScheduler, callable_state, per_group


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing that restarts from lr_0, each period T_mult times longer.

        lr = eta_min + (lr_0 − eta_min) · (1 + cos(π · T_cur / T_i)) / 2

    T_cur counts the steps since the last restart and T_i is the length of the
    current period: T_0 at first; when T_cur reaches T_i, T_cur ← T_cur − T_i and
    T_i ← T_i · T_mult.

    ``step(epoch)`` may also be called with a (fractional) epoch, e.g.
    ``scheduler.step(epoch + i / iters_per_epoch)`` after each batch; T_cur and
    T_i are then computed from the epoch:

        T_mult = 1:  T_cur = epoch mod T_0
        T_mult > 1:  n = ⌊log_{T_mult}(epoch / T_0 · (T_mult − 1) + 1)⌋,
                     T_cur = epoch − T_0 · (T_mult^n − 1) / (T_mult − 1),  T_i = T_0 · T_mult^n

    Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
    ICLR 2017, https://arxiv.org/abs/1608.03983

    Args:
        optimizer (Optimizer): wrapped optimizer.
        T_0 (int): number of steps until the first restart.
        T_mult (int): factor by which T_i grows after each restart. Default: 1.
        eta_min (float): minimum learning rate. Default: 0.
        last_epoch (int): index of the last step. Default: -1.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(  # noqa: TRY004 (torch raises ValueError)
                f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}"
            )
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        cosine = 1 + math.cos(math.pi * self.T_cur / self.T_i)
        return [self.eta_min + (lr_0 - self.eta_min) * cosine / 2 for lr_0 in self.base_lrs]

    def step(self, epoch=None):
        """Advance one step, or jump to ``epoch`` (which may be fractional)."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        elif epoch < 0:
            raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        elif epoch < self.T_0:
            self.T_i = self.T_0
            self.T_cur = epoch
        elif self.T_mult == 1:
            self.T_cur = epoch % self.T_0
        else:
            n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
            self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
            self.T_i = self.T_0 * self.T_mult**n
        self.last_epoch = math.floor(epoch)
        self._set_lrs(self.get_lr())


def _start_momentum_cycle(scheduler, base_momentum, max_momentum, last_epoch):
    """Check that the optimizer has a momentum to cycle; on a fresh start set it to
    ``max_momentum`` and store both bounds in each param group."""
    optimizer = scheduler.optimizer
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
    scheduler.use_beta1 = "betas" in optimizer.defaults
    base_momentums = per_group("base_momentum", optimizer, base_momentum)
    max_momentums = per_group("max_momentum", optimizer, max_momentum)
    if last_epoch == -1:
        for group, base, top in zip(optimizer.param_groups, base_momentums, max_momentums):
            _set_momentum(scheduler, group, top)
            group["max_momentum"] = top
            group["base_momentum"] = base
    return base_momentums, max_momentums


def _set_momentum(scheduler, group, momentum):
    if scheduler.use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


class CyclicLR(LRScheduler):
    """Cyclical learning rate: a triangle wave between base_lr and max_lr.

    With up = step_size_up, down = step_size_down and r = up / (up + down):

        cycle = ⌊1 + t / (up + down)⌋                      (1, 2, 3, ...)
        x     = 1 + t / (up + down) − cycle                (position in the cycle, 0 ≤ x < 1)
        h     = x / r             if x ≤ r                 (rises 0 → 1)
                (x − 1) / (r − 1) otherwise                (falls 1 → 0)
        s     = scale_fn(cycle) if scale_mode == "cycle" else scale_fn(t)
        lr_t  = base_lr + (max_lr − base_lr) · h · s
        momentum_t = max_momentum − (max_momentum − base_momentum) · h · s

    The modes are scale functions: "triangular" s = 1; "triangular2"
    s = 1 / 2^(cycle − 1) (the height halves each cycle); "exp_range" s = gamma^t.

    Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017,
    https://arxiv.org/abs/1506.01186

    Args:
        optimizer (Optimizer): wrapped optimizer.
        base_lr (float or list): lower lr bound, per param group or for all.
        max_lr (float or list): upper lr bound, per param group or for all.
        step_size_up (int): steps in the rising half of a cycle. Default: 2000.
        step_size_down (int): steps in the falling half; None means
            step_size_up. Default: None.
        mode (str): "triangular", "triangular2" or "exp_range"; ignored when
            scale_fn is given. Default: "triangular".
        gamma (float): the base of "exp_range". Default: 1.0.
        scale_fn (function): custom ``x -> s`` with 0 ≤ s ≤ 1; overrides mode.
            Default: None.
        scale_mode (str): "cycle" or "iterations": whether scale_fn gets the
            cycle number or the step t. Only used with scale_fn (the modes fix
            it). Default: "cycle".
        cycle_momentum (bool): cycle the momentum inversely to the lr.
            Default: True.
        base_momentum (float or list): lower momentum bound (at max_lr).
            Default: 0.8.
        max_momentum (float or list): upper momentum bound (at base_lr).
            Default: 0.9.
        last_epoch (int): index of the last batch. Default: -1.
    """

    def __init__(
        self,
        optimizer,
        base_lr,
        max_lr,
        step_size_up=2000,
        step_size_down=None,
        mode="triangular",
        gamma=1.0,
        scale_fn=None,
        scale_mode="cycle",
        cycle_momentum=True,
        base_momentum=0.8,
        max_momentum=0.9,
        last_epoch=-1,
    ):
        self.optimizer = optimizer
        base_lrs = per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
        self.max_lrs = per_group("max_lr", optimizer, max_lr)
        step_size_up = float(step_size_up)
        step_size_down = step_size_up if step_size_down is None else float(step_size_down)
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        if scale_fn is None:
            scale_mode = "iterations" if mode == "exp_range" else "cycle"
        self.scale_mode = scale_mode
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.base_momentums, self.max_momentums = _start_momentum_cycle(
                self, base_momentum, max_momentum, last_epoch
            )
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def scale_fn(self, x):
        """The amplitude factor s at cycle number or step ``x``."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma**x

    def get_lr(self):
        """The lrs at step ``last_epoch``; also sets the momentum when it cycles."""
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            height = x / self.step_ratio
        else:
            height = (x - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        lrs = [
            base + (top - base) * height * scale
            for base, top in zip(self.base_lrs, self.max_lrs, strict=True)
        ]
        if self.cycle_momentum:
            for group, base, top in zip(
                self.optimizer.param_groups, self.base_momentums, self.max_momentums, strict=True
            ):
                _set_momentum(self, group, top - (top - base) * height * scale)
        return lrs

    def state_dict(self):
        """Every attribute but the optimizer; of a custom scale_fn only a callable
        object's attributes (a plain function or lambda is saved as None)."""
        state = super().state_dict()
        state["_scale_fn_custom"] = (
            None if self._scale_fn_custom is None else callable_state(self._scale_fn_custom)
        )
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        saved_fn = state.pop("_scale_fn_custom")
        if saved_fn is not None:
            self._scale_fn_custom.__dict__.update(saved_fn)
        self.__dict__.update(state)


class OneCycleLR(LRScheduler):
    """The 1cycle policy: warm up to max_lr, then anneal far below the start.

    With T = total_steps, p = pct_start, lr_start = max_lr / div_factor and
    lr_min = lr_start / final_div_factor, the lr moves between these points
    (each segment annealed by ``anneal_strategy``):

        two phases (default):  t = 0: lr_start → t = pT−1: max_lr → t = T−1: lr_min
        three_phase=True:      t = 0: lr_start → pT−1: max_lr → 2pT−2: lr_start → T−1: lr_min

    Inside a segment from step a to step b, with progress q = (t − a) / (b − a):

        cos:    lr = end + (start − end) · (1 + cos(π q)) / 2
        linear: lr = start + (end − start) · q

    The momentum moves the opposite way, max_momentum → base_momentum →
    max_momentum (it stays at max_momentum in the third phase). Stepping past
    t = T raises ValueError.

    The lr bounds live in each param group as "initial_lr", "max_lr", "min_lr"
    (and "max_momentum", "base_momentum"), so they are saved with the optimizer.

    Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks Using
    Large Learning Rates", 2017, https://arxiv.org/abs/1708.07120

    Args:
        optimizer (Optimizer): wrapped optimizer.
        max_lr (float or list): peak lr, per param group or for all.
        total_steps (int): steps in the cycle; or give epochs and steps_per_epoch.
            Default: None.
        epochs (int): with steps_per_epoch, total_steps = epochs · steps_per_epoch.
            Default: None.
        steps_per_epoch (int): see epochs. Default: None.
        pct_start (float): fraction of the steps spent increasing the lr.
            Default: 0.3.
        anneal_strategy (str): "cos" or "linear". Default: "cos".
        cycle_momentum (bool): cycle the momentum inversely to the lr.
            Default: True.
        base_momentum (float or list): momentum at max_lr. Default: 0.85.
        max_momentum (float or list): momentum at the start and end. Default: 0.95.
        div_factor (float): lr_start = max_lr / div_factor. Default: 25.
        final_div_factor (float): lr_min = lr_start / final_div_factor.
            Default: 1e4.
        three_phase (bool): come back down to lr_start symmetrically before the
            final anneal, as in the paper. Default: False (fastai's two phases).
        last_epoch (int): index of the last batch. Default: -1.
    """

    def __init__(
        self,
        optimizer,
        max_lr,
        total_steps=None,
        epochs=None,
        steps_per_epoch=None,
        pct_start=0.3,
        anneal_strategy="cos",
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor=25.0,
        final_div_factor=1e4,
        three_phase=False,
        last_epoch=-1,
    ):
        self.optimizer = optimizer
        if total_steps is not None:
            if total_steps <= 0 or not isinstance(total_steps, int):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}"
            )
        self._anneal_func_type = anneal_strategy

        # Each phase ends at step end_step, moving between the group keys named.
        peak = float(pct_start * self.total_steps) - 1
        up = {
            "end_step": peak,
            "start_lr": "initial_lr",
            "end_lr": "max_lr",
            "start_momentum": "max_momentum",
            "end_momentum": "base_momentum",
        }
        if three_phase:
            self._schedule_phases = [
                up,
                {
                    "end_step": float(2 * pct_start * self.total_steps) - 2,
                    "start_lr": "max_lr",
                    "end_lr": "initial_lr",
                    "start_momentum": "base_momentum",
                    "end_momentum": "max_momentum",
                },
                {
                    "end_step": self.total_steps - 1,
                    "start_lr": "initial_lr",
                    "end_lr": "min_lr",
                    "start_momentum": "max_momentum",
                    "end_momentum": "max_momentum",
                },
            ]
        else:
            self._schedule_phases = [
                up,
                {
                    "end_step": self.total_steps - 1,
                    "start_lr": "max_lr",
                    "end_lr": "min_lr",
                    "start_momentum": "base_momentum",
                    "end_momentum": "max_momentum",
                },
            ]

        max_lrs = per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, top in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            _start_momentum_cycle(self, base_momentum, max_momentum, last_epoch)
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start, end, pct):
        """From ``start`` (pct = 0) to ``end`` (pct = 1)."""
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        """The lrs at step ``last_epoch``; also sets the momentum when it cycles."""
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(
                f"Tried to step {t} times. The specified number of total steps is {self.total_steps}"
            )
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                if t <= phase["end_step"] or i == len(self._schedule_phases) - 1:
                    break
                start_step = phase["end_step"]
            pct = (t - start_step) / (phase["end_step"] - start_step)
            lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct))
            if self.cycle_momentum:
                momentum = self._anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                _set_momentum(self, group, momentum)
        return lrs
