"""Notebook 10, training recipes: warmup + cosine per batch, gradient clipping, gradient
accumulation and an EMA of the weights.

Each checker runs the learner's code next to an independent oracle: torch's own schedulers
(SequentialLR of LinearLR and CosineAnnealingLR, LambdaLR), torch.nn.utils' clipping, a
training run on one big batch, and the reference EMA (``helpers.recipes``, itself tested against
torch.optim.swa_utils.AveragedModel). A cause is named only when the listed wrong version,
replayed, gives the learner's numbers on the failing case and on every case before it; the
tests feed each wrong version back in.
"""

import copy
import math
import warnings

import torch
from torch import nn
from torch.optim import lr_scheduler as S
from torch.optim import swa_utils

from helpers import lr_range_test as _lr_range_test
from helpers import recipes
from helpers.checking import Mismatch, case, exercise, hidden_pass, outside_candidate, untimed
from helpers.checking_tools import _matches, expect_close, shown_pair
from helpers.nn import utils as ours
from helpers.optim import swa_utils as our_swa
from helpers.tasks import digits, mlp


def _first_mistake(mistakes, reproduces):
    """The description of the first mistake for which ``reproduces(wrong)`` holds, or None."""
    for description, wrong in mistakes.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the replays' own warnings (a scheduler stepped first, …)
                if reproduces(wrong):
                    return description
        except Exception:  # noqa: BLE001, S112 (a mistake that crashes reproduces nothing)
            continue
    return None


def _replayed_runs(candidate, cases, *, reference_run, run, compare, same, mistakes):
    """Each case: the reference's run (untimed), the candidate's (watched inside ``case()``),
    ``compare``d; a mismatch without a cause gets the first of ``mistakes`` whose replay gives
    the candidate's results on this case and on every case before it (the replay rule)."""
    seen = []
    for c in cases:
        with outside_candidate(), untimed():  # the reference's time is not the candidate's
            expected = reference_run(c)
        with outside_candidate():  # the candidate runs inside case(), watched
            got = run(candidate, c, c.label)
        seen.append((c, got))
        try:
            compare(c.label, expected, got)
        except Mismatch as mismatch:
            if mismatch.cause is None:
                with untimed():  # the replays of the mistakes are the checker's time
                    mismatch.cause = _first_mistake(mistakes, lambda wrong: all(
                        same(run(wrong, c_), answer) for c_, answer in seen))
            raise


# --------------------------------------------------------------------------
# 10.1 — the LR range test
# --------------------------------------------------------------------------

_RANGE_DATA = None


def _range_batches(n, size=16, offset=0):
    global _RANGE_DATA
    if _RANGE_DATA is None:
        task = digits(n_train=640, n_val=1, seed=5)
        _RANGE_DATA = task.x_train.double(), task.y_train
    x, y = _RANGE_DATA
    starts = [(offset + size * i) % (len(y) - size) for i in range(n)]
    return [(x[s:s + size], y[s:s + size]) for s in starts]


class _RangeCase:
    def __init__(self, name, *, optimizer="SGD", groups=1, model="mlp", warm=0, seed=0, offset=0, **kwargs):
        self.name, self.optimizer, self.groups, self.model = name, optimizer, groups, model
        self.warm, self.seed, self.offset, self.kwargs = warm, seed, offset, kwargs

    @property
    def label(self):
        settings = ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.name}: {settings}"

    def build(self):
        """(model, optimizer, batches): the optimizer maybe with state from `warm` steps already."""
        model = _bn_model(self.seed) if self.model == "bn" else mlp(seed=self.seed, hidden=16).double()
        params = list(model.parameters())
        if self.groups == 1:
            groups = [{"params": params, "lr": 0.01}]
        else:
            groups = [{"params": params[:2], "lr": 0.01}, {"params": params[2:], "lr": 0.002}]
        settings = {"momentum": 0.9} if self.optimizer == "SGD" else {}
        optimizer = getattr(torch.optim, self.optimizer)(groups, **settings)
        if self.model == "bn":
            data = [(torch.randn(16, 6, generator=torch.Generator().manual_seed(self.seed + k),
                                 dtype=torch.float64), torch.arange(16) % 3) for k in range(60)]
        else:
            data = _range_batches(60, offset=self.offset)
        for x, y in data[:self.warm]:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        return model, optimizer, data[self.warm:]


RANGE_CASES = (
    _RangeCase("SGD, a short sweep that does not diverge", start_lr=1e-4, end_lr=0.1, num_steps=10),
    _RangeCase("SGD up to lr 1000: it diverges and stops early", start_lr=1e-2, end_lr=1000.0, num_steps=24),
    _RangeCase("no smoothing (smoothing=0), diverge=2", start_lr=1e-2, end_lr=1000.0, num_steps=20,
               smoothing=0.0, diverge=2.0, offset=100),
    _RangeCase("2 param groups (the second at a fifth of the first's lr), Adam with state", optimizer="Adam",
               groups=2, warm=3, start_lr=1e-4, end_lr=10.0, num_steps=14, smoothing=0.9, seed=1),
    _RangeCase("BatchNorm's running statistics restored too", model="bn", warm=2, start_lr=1e-2, end_lr=100.0,
               num_steps=14, smoothing=0.8, diverge=3.0, seed=2),
)
HIDDEN_RANGE_CASES = (
    _RangeCase("hidden: 2 groups, SGD with state, another seed", groups=2, warm=4, start_lr=1e-2,
               end_lr=3000.0, num_steps=30, smoothing=0.95, diverge=2.5, seed=3, offset=37),
)


def _model_state(model):
    return [t.detach().clone() for t in (*model.parameters(), *model.buffers())]


def _range_run(fn, c, label=None):
    model, optimizer, data = c.build()
    before = _model_state(model), copy.deepcopy(optimizer.state_dict())
    with case(label):
        answer = fn(model, nn.functional.cross_entropy, data, optimizer, **c.kwargs)
    if hasattr(answer, "lrs") and hasattr(answer, "smoothed"):
        answer = answer.lrs, answer.losses, answer.smoothed
    after = _model_state(model), copy.deepcopy(optimizer.state_dict())
    return {"answer": answer, "before": before, "after": after}


def _range_record(label, run):
    """(lrs, losses, smoothed) as lists of floats, or a Mismatch saying what the answer should be."""
    answer = run["answer"]
    if not (isinstance(answer, (tuple, list)) and len(answer) == 3):
        raise Mismatch(label, "(lrs, losses, smoothed)", type(answer).__name__,
                       cause="return the three lists lrs, losses, smoothed (one entry per step taken)")
    rows = []
    for name, values in zip(("lrs", "losses", "smoothed"), answer):
        if not isinstance(values, (list, tuple)) or not all(_is_number(v) for v in values):
            raise Mismatch(label, "a list of floats", type(values).__name__, detail=f"the returned {name}",
                           cause=f"{name} must be a list of Python floats (loss.item(), not the tensor)")
        rows.append([float(v) for v in values])
    return rows


def _compare_range(label, expected, got):
    e_rows, g_rows = _range_record(label, expected), _range_record(label, got)
    for name, e, g in zip(("lrs", "losses", "smoothed"), e_rows, g_rows):
        n = min(len(e), len(g))
        for i in range(n):
            expect_close(label, e[i], g[i], step=i, what=f"{name}[{i}]")
        if len(e) != len(g):
            stop = ("it stops after step {0}, when the smoothed loss {1:.4g} exceeds diverge × the best "
                    "smoothed loss so far".format(len(e) - 1, e_rows[2][-1]) if len(e) < len(g)
                    else f"it does not stop before step {len(e) - 1}")
            raise Mismatch(label, f"{len(e)} steps", f"{len(g)} steps",
                           detail=f"the number of {name}; {stop}")
    (e_model, e_opt), (g_model, g_opt) = got["before"], got["after"]
    if not all(torch.equal(a, b) for a, b in zip(e_model, g_model)):
        raise Mismatch(label, detail="the model's parameters or buffers after the test differ from before it",
                       cause="the range test must leave the model as it found it: save copies of the "
                             "parameters and buffers (t.detach().clone()) before, copy_ them back afterwards")
    where = _state_difference(e_opt, g_opt)
    if where:
        raise Mismatch(label, detail=f"the optimizer's state_dict after the test: {where}",
                       cause="the range test must leave the optimizer as it found it (its state and every "
                             "group's lr): copy.deepcopy(optimizer.state_dict()) before, load_state_dict "
                             "after")


def _state_difference(expected, got, where="state_dict()"):
    if isinstance(expected, torch.Tensor):
        return None if isinstance(got, torch.Tensor) and torch.equal(expected, got) else f"{where} differs"
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(expected) != set(got):
            return f"{where} has other keys"
        return next((d for k in expected if (d := _state_difference(expected[k], got[k], f"{where}[{k!r}]"))),
                    None)
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(expected) != len(got):
            return f"{where} differs"
        return next((d for i, (a, b) in enumerate(zip(expected, got))
                     if (d := _state_difference(a, b, f"{where}[{i}]"))), None)
    return None if expected == got else f"{where} is {got!r:.40}, expected {expected!r:.40}"


def _same_range(a, b):
    try:
        _compare_range("", a, b)
    except Mismatch:
        return False
    return True


def _range_wrong(*, no_bias_correction=False, linear=False, over_n=False, raw_stop=False, swapped=False,
                 no_restore_model=False, no_restore_optimizer=False, same_lr=False, last_unrecorded=False):
    """helpers.lr_range_test's loop with one mistake (batches: a list of at least num_steps)."""
    def wrong(model, loss_fn, batches, optimizer, *, start_lr=1e-7, end_lr=10.0, num_steps=100,
              smoothing=0.98, diverge=4.0):
        saved = _model_state(model)
        saved_optimizer = copy.deepcopy(optimizer.state_dict())
        lr_0 = optimizer.param_groups[0]["lr"]
        ratios = [1.0 if same_lr else g["lr"] / lr_0 for g in optimizer.param_groups]
        lrs, losses, smoothed = [], [], []
        average, best, best_raw = 0.0, math.inf, math.inf
        for i, (x, y) in zip(range(num_steps), batches):
            if linear:
                lr = start_lr + (end_lr - start_lr) * i / (num_steps - 1)
            else:
                lr = start_lr * (end_lr / start_lr) ** (i / (num_steps if over_n else num_steps - 1))
            for group, ratio in zip(optimizer.param_groups, ratios):
                group["lr"] = lr * ratio
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            raw = loss.item()
            average = ((1 - smoothing) * average + smoothing * raw if swapped
                       else smoothing * average + (1 - smoothing) * raw)
            s = average if no_bias_correction else average / (1 - smoothing ** (i + 1))
            best, best_raw = min(best, s), min(best_raw, raw)
            stop = raw > diverge * best_raw if raw_stop else s > diverge * best
            if not (stop and last_unrecorded):
                lrs.append(lr), losses.append(raw), smoothed.append(s)
            if not math.isfinite(s) or stop:
                break
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            if not no_restore_model:
                for t, value in zip((*model.parameters(), *model.buffers()), saved):
                    t.copy_(value)
        if not no_restore_optimizer:
            optimizer.load_state_dict(saved_optimizer)
        return lrs, losses, smoothed
    return wrong


RANGE_MISTAKES = {
    "the smoothed loss has no bias correction: the EMA a_i = β·a_{i−1} + (1 − β)·L_i starts at 0, so divide "
    "by 1 − β^(i+1) (i from 0); without it the first smoothed losses are far too small":
        _range_wrong(no_bias_correction=True),
    "the lrs grow linearly: the test sweeps them geometrically, lr_i = start_lr·(end_lr/start_lr)^(i/"
    "(num_steps − 1)), the same factor per step, so every decade gets as many steps":
        _range_wrong(linear=True),
    "the exponent is i/num_steps, so the sweep never reaches end_lr: lr_i = start_lr·(end_lr/start_lr)^(i/"
    "(num_steps − 1)), from start_lr at i = 0 to end_lr at i = num_steps − 1":
        _range_wrong(over_n=True),
    "the EMA's weights are swapped: a_i = β·a_{i−1} + (1 − β)·L_i keeps β (0.98) of the average, (1 − β) of "
    "the new loss": _range_wrong(swapped=True),
    "you stop on the raw loss: a single noisy batch can stop the test. Stop when the *smoothed* loss exceeds "
    "diverge × the best smoothed loss so far":
        _range_wrong(raw_stop=True),
    "the step that diverges is not recorded: record it (its lr, loss and smoothed loss), then stop before "
    "its update": _range_wrong(last_unrecorded=True),
    "every param group gets the same lr: group 0's follows the sweep and every other group keeps its ratio "
    "to it, lr_i·lr_k/lr_0 with the lrs from before the test":
        _range_wrong(same_lr=True),
}


@exercise("10.1", "The LR range test", reference=_lr_range_test.lr_range_test,
          library=[_lr_range_test.lr_range_test], hints=[
    "Before the loop, save copies of the model's parameters and buffers and "
    "copy.deepcopy(optimizer.state_dict()), and every group's lr divided by group 0's. Step i = 0, 1, …: "
    "set the lrs, train on the next batch, "
    "record, maybe stop; after the loop, put everything back.",
    "lr_i = start_lr·(end_lr/start_lr)^(i/(num_steps − 1)). Smoothing: a = β·a + (1 − β)·L (a = 0 before "
    "step 0) and s = a/(1 − β^(i+1)). Record lr_i, L (loss.item()) and s; stop (before the update) when s "
    "is not finite or s > diverge·min(s so far).",
    "for i, (x, y) in zip(range(num_steps), batches): lr = …; for group, r in zip(optimizer.param_groups, "
    "ratios): group['lr'] = lr * r; optimizer.zero_grad(); loss = loss_fn(model(x), y); a = smoothing * a + "
    "(1 - smoothing) * loss.item(); s = a / (1 - smoothing ** (i + 1)); append; best = min(best, s); if not "
    "math.isfinite(s) or s > diverge * best: break; loss.backward(); optimizer.step()",
])
def check_lr_range_test(candidate):
    cases = RANGE_CASES + (HIDDEN_RANGE_CASES if hidden_pass() else ())
    _replayed_runs(candidate, cases, reference_run=lambda c: _range_run(_lr_range_test.lr_range_test, c),
                   run=_range_run, compare=_compare_range, same=_same_range, mistakes=RANGE_MISTAKES)
    return (f"{len(cases)} tests (no divergence, an early stop, no smoothing, 2 param groups with Adam's "
            "state, BatchNorm): every step's lr, loss and smoothed loss, where it stops, and the model and "
            "optimizer restored exactly")


# --------------------------------------------------------------------------
# 10.2 — warmup + cosine, per batch, in closed form
# --------------------------------------------------------------------------


def _torch_schedule(optimizer, W, T, min_lr, from_zero):
    """Torch's own warmup + cosine: SequentialLR(LinearLR, CosineAnnealingLR), or the LambdaLR of
    Hugging Face's get_cosine_with_min_lr_schedule_with_warmup (warmup t/W from 0)."""
    if from_zero:
        def factor(t, base):
            if t < W:
                return t / max(1, W)
            progress = (t - W) / max(1, T - W)
            rate = min_lr / base
            return 0.5 * (1 + math.cos(math.pi * progress)) * (1 - rate) + rate
        return S.LambdaLR(optimizer, [lambda t, b=g["lr"]: factor(t, b) for g in optimizer.param_groups])
    cosine = S.CosineAnnealingLR(optimizer, T_max=T - W, eta_min=min_lr)
    if W == 0:
        return cosine
    warmup = S.LinearLR(optimizer, start_factor=1 / (W + 1), end_factor=1.0, total_iters=W)
    return S.SequentialLR(optimizer, [warmup, cosine], milestones=[W])


def _torch_lrs(W, T, min_lr, lrs, from_zero):
    """[[lr of each group] for t = 0 … T]: the lrs optimizer steps 0 … T train with."""
    params = [torch.zeros(1, requires_grad=True) for _ in lrs]
    optimizer = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)])
    scheduler = _torch_schedule(optimizer, W, T, min_lr, from_zero)
    rows = []
    for _ in range(T + 1):
        rows.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return rows


def _closed_form_lrs(fn, W, T, min_lr, lrs, from_zero):
    return [[fn(t, base, W, T, min_lr, from_zero=from_zero) for base in lrs] for t in range(T + 1)]


def _cosine_wrong(*, warmup=None, progress=None, floor=None, ahead=0):
    """recipes.warmup_cosine_lr with one part written wrongly."""
    def wrong(step, base_lr, warmup_steps, total_steps, min_lr=0.0, *, from_zero=False):
        t, W, T = step + ahead, warmup_steps, total_steps
        low = min_lr if floor is None else floor(min_lr, base_lr)
        if t < W:
            f = warmup(t, W, from_zero) if warmup else (t / W if from_zero else (t + 1) / (W + 1))
            return base_lr * f
        p = progress(t, W, T) if progress else (t - W) / (T - W)
        return low + (base_lr - low) * (1 + math.cos(math.pi * p)) / 2
    return wrong


COSINE_MISTAKES = {
    "with from_zero=False the warmup is torch's LinearLR(start_factor=1/(W + 1)): base_lr·(t + 1)/(W + 1), "
    "so the first batch already trains; you started from 0 (base_lr·t/W, the other convention)":
        _cosine_wrong(warmup=lambda t, W, z: t / W),
    "with from_zero=True the warmup starts at 0: base_lr·t/W (Hugging Face's LambdaLR); you used torch's "
    "LinearLR convention base_lr·(t + 1)/(W + 1)":
        _cosine_wrong(warmup=lambda t, W, z: (t + 1) / (W + 1)),
    "your warmup reaches the full lr one step early, (t + 1)/W: the warmup ends at step W, where the "
    "cosine starts at base_lr":
        _cosine_wrong(warmup=lambda t, W, z: (t + 1) / W),
    "your cosine runs over all T steps from step 0; it starts after the warmup and lasts T − W steps: "
    "progress (t − W)/(T − W)":
        _cosine_wrong(progress=lambda t, W, T: t / T),
    "your cosine's progress is (t − W)/T: it starts at the end of the warmup but spreads over T steps, "
    "so it is still above min_lr at step T; it lasts T − W steps: (t − W)/(T − W)":
        _cosine_wrong(progress=lambda t, W, T: (t - W) / T),
    "your cosine ends at 0: it decays to min_lr, min_lr + (base_lr − min_lr)·(1 + cos(π·p))/2":
        _cosine_wrong(floor=lambda low, base: 0.0),
    "min_lr is a learning rate (torch's eta_min), the same for every group: the floor is min_lr itself, "
    "not min_lr·base_lr":
        _cosine_wrong(floor=lambda low, base: low * base),
    "your whole schedule is one step ahead: step 0 is the first batch, so the lr of step t is the one "
    "after t scheduler steps":
        _cosine_wrong(ahead=1),
}

COSINE_CASES = (  # (name, W, T, min_lr, group lrs, from_zero)
    ("W=5, T=30, min_lr=1e-3, LinearLR's warmup", 5, 30, 1e-3, (0.1, 0.02), False),
    ("the same, warmup from 0", 5, 30, 1e-3, (0.1, 0.02), True),
    ("W=1, T=12, min_lr=0, 3 groups", 1, 12, 0.0, (1.0, 0.5, 0.01), False),
    ("W=8, T=60, min_lr=5e-3, warmup from 0", 8, 60, 5e-3, (0.05, 0.3), True),
    ("no warmup: W=0, T=20", 0, 20, 0.01, (0.2,), False),
    ("W=40, T=400 (3 epochs of 100 batches and a bit), min_lr=1e-5", 40, 400, 1e-5, (3e-4, 1e-3), False),
)
HIDDEN_COSINE_CASES = (
    ("W=3, T=17, warmup from 0, min_lr=0", 3, 17, 0.0, (0.7, 0.07), True),
    ("W=12, T=100, 3 groups", 12, 100, 2e-4, (0.01, 0.003, 0.5), False),
    ("W=0, T=9, warmup from 0", 0, 9, 0.0, (1.0,), True),
)


def _same_lr_rows(a, b):
    return len(a) == len(b) and all(
        len(x) == len(y) and all(_is_number(v) and math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-15)
                                 for u, v in zip(x, y)) for x, y in zip(a, b))


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _phase(t, W, T):
    return "warmup" if t < W else ("the last step's lr, min_lr" if t == T else "cosine")


@exercise("10.2", "Warmup + cosine per batch, closed form", reference=recipes.warmup_cosine_lr,
          library=[recipes.warmup_cosine_lr], hints=[
    "Two phases. For t < W the warmup: base_lr·(t + 1)/(W + 1) (torch's LinearLR with "
    "start_factor=1/(W + 1)) or, with from_zero, base_lr·t/W. From t = W on, the cosine starts at "
    "base_lr and reaches min_lr at t = T.",
    "Cosine: progress p = (t − W)/(T − W), lr = min_lr + (base_lr − min_lr)·(1 + cos(π·p))/2. "
    "Return a float (math.cos, not torch.cos).",
    "if step < warmup_steps: return base_lr * (step / warmup_steps if from_zero else (step + 1) / "
    "(warmup_steps + 1)); p = (step − warmup_steps) / (total_steps − warmup_steps); return min_lr + "
    "(base_lr − min_lr) * (1 + math.cos(math.pi * p)) / 2",
])
def check_warmup_cosine_lr(candidate):
    cases = COSINE_CASES + (HIDDEN_COSINE_CASES if hidden_pass() else ())
    seen = []
    for name, W, T, min_lr, lrs, from_zero in cases:
        label = f"{name}: group lrs {list(lrs)}"
        with outside_candidate(), untimed():  # the reference's time is not the candidate's
            expected = _torch_lrs(W, T, min_lr, lrs, from_zero)
        with case(label):
            got = _closed_form_lrs(candidate, W, T, min_lr, lrs, from_zero)
        settings = (W, T, min_lr, lrs, from_zero)
        seen.append((settings, got))
        for t, (want, have) in enumerate(zip(expected, got)):
            for g, (e, h) in enumerate(zip(want, have)):
                if _is_number(h) and math.isclose(e, h, rel_tol=1e-9, abs_tol=1e-15):
                    continue
                if not _is_number(h):
                    cause = "return the lr as a float" + (" (did you forget `return`?)" if h is None else
                                                          " (math.cos, not torch.cos)")
                else:
                    cause = _first_mistake(COSINE_MISTAKES, lambda wrong: all(
                        _same_lr_rows(_closed_form_lrs(wrong, *s), rows) for s, rows in seen))
                want_shown, have_shown = shown_pair(e, h)
                torch_name = "LambdaLR (t/W, then the cosine)" if from_zero else (
                    "CosineAnnealingLR" if W == 0 else "SequentialLR(LinearLR, CosineAnnealingLR)")
                where = f"step={t} ({_phase(t, W, T)}, from_zero={from_zero})"
                raise Mismatch(label, want_shown, have_shown, step=t,
                               detail=f"the lr of group {g} (base lr {lrs[g]}) at {where}; "
                                      f"torch's {torch_name} gives {want_shown}",
                               cause=cause)
    return (f"{len(cases)} settings (both warmup conventions, no warmup, 1 to 3 groups, up to "
            f"{max(c[2] for c in cases)} steps): your lr at every step equals torch's "
            "SequentialLR(LinearLR, CosineAnnealingLR), or LambdaLR from 0, stepped per batch")


# --------------------------------------------------------------------------
# 10.3 — clip_grad_norm_
# --------------------------------------------------------------------------


def _grads(shapes, seed, dtype=torch.float32, scale=1.0, none=()):
    """Parameters of ``shapes`` with seeded gradients (``none``: indices whose .grad is None)."""
    generator = torch.Generator().manual_seed(seed)
    params = []
    for i, shape in enumerate(shapes):
        p = torch.randn(shape, generator=generator, dtype=dtype).requires_grad_()
        g = scale * torch.randn(shape, generator=generator, dtype=dtype)
        p.grad = None if i in none else g
        params.append(p)
    return params


def _poisoned(params, value):
    params[1].grad[0] = value
    return params


_SHAPES = ((4, 3), (5,), (2, 2, 2))

NORM_CASES = (  # (name, params, args, kwargs, how to pass them)
    ("3 parameters, total 2-norm above max_norm", _grads(_SHAPES, 1), (1.0,), {}, "list"),
    ("total norm below max_norm: nothing to clip", _grads(_SHAPES, 2, scale=0.05), (5.0,), {}, "list"),
    ("a parameter whose .grad is None", _grads(_SHAPES, 3, none=(1,)), (0.5,), {}, "list"),
    ("norm_type=1", _grads(_SHAPES, 4), (2.0,), {"norm_type": 1.0}, "list"),
    ("norm_type=inf (the largest |g|)", _grads(_SHAPES, 5), (0.8,), {"norm_type": math.inf}, "list"),
    ("float64, norm_type=3, max_norm=0.7", _grads(_SHAPES, 6, torch.float64), (0.7,), {"norm_type": 3},
     "list"),
    ("float64, total norm 1.5, max_norm=1", _grads(((6,), (3, 2)), 7, torch.float64), (1.0,), {}, "list"),
    ("model.parameters(), a generator (it can be iterated only once)", _grads(_SHAPES, 8), (1.0,), {},
     "generator"),
    ("a single tensor, not a list", _grads(((7,),), 9), (0.5,), {}, "tensor"),
    ("an inf gradient, error_if_nonfinite=False: scaled anyway", _poisoned(_grads(_SHAPES, 10), math.inf),
     (1.0,), {}, "list"),
)
HIDDEN_NORM_CASES = (
    ("float64, 4 parameters, norm_type=2.5", _grads(((3,), (2, 5), (4,), (1,)), 21, torch.float64), (0.3,),
     {"norm_type": 2.5}, "list"),
    ("float64 generator, 2 grads None, norm_type=inf", _grads(((3,), (2, 5), (4,), (1,)), 22, torch.float64,
                                                              none=(0, 2)), (0.1,), {"norm_type": math.inf},
     "generator"),
)
_NONFINITE = ("a NaN gradient, error_if_nonfinite=True", _poisoned(_grads(_SHAPES, 11), math.nan), (1.0,),
              {"error_if_nonfinite": True}, "list")


def _total(grads, p):
    norms = torch.stack([torch.linalg.vector_norm(g, p) for g in grads])
    return torch.linalg.vector_norm(norms, p)


def _clip_wrong(*, per_parameter=False, no_clamp=False, no_eps=False, returns_clipped=False,
                always_2=False, sum_of_norms=False, of_weights=False):
    """clip_grad_norm_ written with one mistake."""
    def wrong(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
        params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
        with torch.no_grad():
            grads = [p.grad for p in params if p.grad is not None]
            p_norm = 2.0 if always_2 else float(norm_type)
            tensors = [p for p in params if p.grad is not None] if of_weights else grads
            total = _total(tensors, p_norm) if not sum_of_norms else sum(
                torch.linalg.vector_norm(g, p_norm) for g in tensors)
            for g in grads:
                norm = torch.linalg.vector_norm(g, p_norm) if per_parameter else total
                coef = max_norm / norm if no_eps else max_norm / (norm + 1e-6)
                g.mul_(coef if no_clamp else torch.clamp(coef, max=1.0))
            if returns_clipped:
                return _total(grads, p_norm)
            return total
    return wrong


CLIP_MISTAKES = {
    "you clipped every parameter's gradient by its own norm: clip_grad_norm_ takes one total norm over "
    "all the gradients, as if they were one long vector, and scales them all by the same factor":
        _clip_wrong(per_parameter=True),
    "you scaled gradients whose total norm is already below max_norm up to max_norm: the factor is "
    "min(1, max_norm/(total + 1e-6)); clipping only ever shrinks":
        _clip_wrong(no_clamp=True),
    "the factor is max_norm/(total + 1e-6), as torch's: you left out the 1e-6":
        _clip_wrong(no_eps=True),
    "you returned the norm after clipping; clip_grad_norm_ returns the total norm before it (what you "
    "log to see how often clipping acts)":
        _clip_wrong(returns_clipped=True),
    "your total norm is always the 2-norm: use norm_type (p) for every norm, ‖(‖g₁‖_p, …)‖_p, and the "
    "largest |g| for inf":
        _clip_wrong(always_2=True),
    "you added the norms of the gradients: the total is the norm of the vector of their norms, "
    "‖(‖g₁‖_p, ‖g₂‖_p, …)‖_p (for p = 2 the square root of the sum of squares)":
        _clip_wrong(sum_of_norms=True),
    "you took the norm of the parameters themselves: the total is the norm of their .grad":
        _clip_wrong(of_weights=True),
}


def _passed_as(params, how):
    if how == "tensor":
        return params[0]
    if how == "generator":
        return (p for p in params)
    return list(params)


def _run_clip(fn, params, args, kwargs, how):
    """(returned value, the params after the call, the grad tensors before it) on a copy."""
    params = copy.deepcopy(params)
    before = [p.grad for p in params]
    answer = fn(_passed_as(params, how), *args, **kwargs)
    return answer, params, before


def _same_clip(a, b):
    (answer_a, params_a, _), (answer_b, params_b, _) = a, b
    return (isinstance(answer_b, torch.Tensor) and _matches(answer_a, answer_b)
            and all((p.grad is None) == (q.grad is None) and (p.grad is None or _matches(p.grad, q.grad))
                    for p, q in zip(params_a, params_b)))


def _expect_grads(name, expected, got, before):
    for i, (e, g, b) in enumerate(zip(expected, got, before)):
        if e.grad is None:
            if g.grad is not None:
                raise Mismatch(name, None, g.grad, detail=f"parameter {i}'s .grad",
                               cause="a parameter whose .grad is None must keep it None: skip it")
            continue
        if g.grad is not b:
            raise Mismatch(name, detail=f"parameter {i}'s .grad is a new tensor",
                           cause="clip in place (g.mul_(factor), or p.grad.mul_(…)): `p.grad = p.grad * c` "
                                 "replaces the tensor, which the optimizer and hooks may already hold")
        expect_close(name, e.grad, g.grad, what=f"parameter {i}'s .grad")


@exercise("10.3", "clip_grad_norm_", reference=ours.clip_grad_norm_,
          library=[torch.nn.utils.clip_grad_norm_, ours.clip_grad_norm_, torch.nn.utils.get_total_norm,
                   ours.get_total_norm, torch.nn.utils.clip_grads_with_norm_, ours.clip_grads_with_norm_],
          hints=[
    "Collect the gradients that are not None (turn a single tensor into a list first, and a generator "
    "into a list once). The total norm is one number for all of them: the p-norm of the vector of "
    "their p-norms, torch.linalg.vector_norm(torch.stack([vector_norm(g, p) for g in grads]), p).",
    "The factor is min(1, max_norm / (total + 1e-6)) (torch.clamp(…, max=1.0)); multiply every gradient "
    "by it in place, under torch.no_grad(). Return the total before clipping. With error_if_nonfinite "
    "and a total that is NaN or inf, raise RuntimeError.",
    "grads = [p.grad for p in params if p.grad is not None]; total = vector_norm(stack([vector_norm(g, "
    "norm_type) for g in grads]), norm_type); if error_if_nonfinite and not torch.isfinite(total): raise "
    "RuntimeError(…); coef = torch.clamp(max_norm / (total + 1e-6), max=1.0); for g in grads: "
    "g.mul_(coef); return total",
])
def check_clip_grad_norm(candidate):
    cases = NORM_CASES + (HIDDEN_NORM_CASES if hidden_pass() else ())
    seen = []
    for name, params, args, kwargs, how in cases:
        with outside_candidate(), untimed():  # the reference's time is not the candidate's
            expected = _run_clip(ours.clip_grad_norm_, params, args, kwargs, how)
        with case(name):
            got = _run_clip(candidate, params, args, kwargs, how)
        seen.append(((params, args, kwargs, how), got))
        try:
            _expect_grads(name, expected[1], got[1], got[2])
            expect_close(name, expected[0], got[0], what="the returned total norm")
        except Mismatch as mismatch:
            if mismatch.cause is None:
                with untimed():  # the replays of the mistakes are the checker's time
                    mismatch.cause = _first_mistake(CLIP_MISTAKES, lambda wrong: all(
                        _same_clip(_run_clip(wrong, *inputs), answer) for inputs, answer in seen))
            raise
    name, params, args, kwargs, how = _NONFINITE
    with case(name):
        try:
            candidate(_passed_as(copy.deepcopy(params), how), *args, **kwargs)
        except RuntimeError:
            pass
        else:
            raise Mismatch(name, "RuntimeError", "no error", cause=(
                "with error_if_nonfinite=True and a total norm that is NaN or inf, raise RuntimeError "
                "(torch.isfinite(total) is False)"))
    return (f"{len(cases) + 1} cases (clipped and not, None grads, norm_type 1, 3 and inf, float64, a "
            "generator, a single tensor, non-finite totals): the gradients scaled in place and the total "
            "norm returned, as torch.nn.utils.clip_grad_norm_")


# --------------------------------------------------------------------------
# 10.4 — clip_grad_value_
# --------------------------------------------------------------------------

VALUE_CASES = (
    ("3 parameters, clip_value=0.5", _grads(_SHAPES, 31), (0.5,), "list"),
    ("a parameter whose .grad is None, clip_value=1", _grads(_SHAPES, 32, none=(0,)), (1.0,), "list"),
    ("float64, clip_value=0.2", _grads(_SHAPES, 33, torch.float64), (0.2,), "list"),
    ("model.parameters(), a generator, clip_value=2 (an int)", _grads(_SHAPES, 34, scale=3.0), (2,),
     "generator"),
    ("a single tensor", _grads(((9,),), 35), (0.3,), "tensor"),
)
HIDDEN_VALUE_CASES = (
    ("float64 generator, clip_value=0.05", _grads(((2, 3), (4,)), 41, torch.float64, none=(1,)), (0.05,),
     "generator"),
)


def _value_wrong(how):
    def wrong(parameters, clip_value):
        params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    how(p.grad, clip_value)
    return wrong


VALUE_MISTAKES = {
    "you clamped only from above: clip into [−clip_value, clip_value], clamp_(min=−clip_value, "
    "max=clip_value)": _value_wrong(lambda g, c: g.clamp_(max=c)),
    "you clamped |g|, losing the sign: clamp g itself into [−clip_value, clip_value]":
        _value_wrong(lambda g, c: g.copy_(g.abs().clamp(max=c))),
    "you scaled each gradient so that its largest |g| is clip_value (that is norm clipping with "
    "norm_type=inf, per tensor); clip_grad_value_ clamps every entry on its own":
        _value_wrong(lambda g, c: g.mul_(c / g.abs().max())),
    "you clamped into [0, clip_value]: the negative entries go to −clip_value, not 0":
        _value_wrong(lambda g, c: g.clamp_(min=0, max=c)),
}


def _same_grads(params, others):
    return all(p.grad is None or _matches(p.grad, q.grad) for p, q in zip(params, others))


def _run_value(fn, params, args, how):
    params = copy.deepcopy(params)
    before = [p.grad for p in params]
    fn(_passed_as(params, how), *args)
    return params, before


@exercise("10.4", "clip_grad_value_", reference=ours.clip_grad_value_,
          library=[torch.nn.utils.clip_grad_value_, ours.clip_grad_value_], hints=[
    "Every entry of every gradient on its own: values above clip_value become clip_value, values below "
    "−clip_value become −clip_value. Skip parameters whose .grad is None.",
    "In place: p.grad.clamp_(…) changes the tensor itself. Accept a single tensor too, and a generator.",
    "params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters); for p in "
    "params: if p.grad is not None: p.grad.clamp_(min=-clip_value, max=clip_value)",
])
def check_clip_grad_value(candidate):
    cases = VALUE_CASES + (HIDDEN_VALUE_CASES if hidden_pass() else ())
    seen = []
    for name, params, args, how in cases:
        with outside_candidate(), untimed():  # the reference's time is not the candidate's
            expected, _ = _run_value(ours.clip_grad_value_, params, args, how)
        with case(name):
            got, before = _run_value(candidate, params, args, how)
        seen.append(((params, args, how), got))
        try:
            _expect_grads(name, expected, got, before)
        except Mismatch as mismatch:
            if mismatch.cause is None:
                with untimed():  # the replays of the mistakes are the checker's time
                    mismatch.cause = _first_mistake(VALUE_MISTAKES, lambda wrong: all(
                        _same_grads(_run_value(wrong, *inputs)[0], answer) for inputs, answer in seen))
            raise
    return (f"{len(cases)} cases (None grads, float64, a generator, an int clip_value, a single tensor): "
            "every gradient clamped in place, as torch.nn.utils.clip_grad_value_")


# --------------------------------------------------------------------------
# 10.5 — gradient accumulation
# --------------------------------------------------------------------------

_TASK = None


def _task():
    global _TASK
    if _TASK is None:
        task = digits(n_train=160, n_val=1, seed=3)
        _TASK = task.x_train.double(), task.y_train
    return _TASK


def _micro_batches(sizes, offset=0):
    x, y = _task()
    out, start = [], offset
    for n in sizes:
        out.append((x[start:start + n], y[start:start + n]))
        start += n
    return out


class _AccumulationCase:
    def __init__(self, name, sizes, k, optimizer="SGD", scheduler="StepLR", seed=0, **optimizer_kwargs):
        self.name, self.sizes, self.k, self.seed = name, tuple(sizes), k, seed
        self.optimizer, self.scheduler, self.optimizer_kwargs = optimizer, scheduler, optimizer_kwargs

    @property
    def label(self):
        return f"{self.name}: micro-batches of {list(self.sizes)}, accumulation_steps={self.k}"

    def build(self):
        model = mlp(seed=self.seed, hidden=16).double()
        optimizer = getattr(torch.optim, self.optimizer)(model.parameters(), **self.optimizer_kwargs)
        if self.scheduler == "StepLR":
            scheduler = S.StepLR(optimizer, step_size=1, gamma=0.7)
        else:
            scheduler = S.LinearLR(optimizer, start_factor=0.25, total_iters=3)
        return model, optimizer, scheduler


ACCUMULATION_CASES = (
    _AccumulationCase("4 micro-batches of 8 per step, SGD with momentum", [8] * 12, 4, lr=0.5, momentum=0.9),
    _AccumulationCase("an uneven last micro-batch: 58 samples in micro-batches of 8", [8] * 7 + [2], 3,
                      lr=0.5, momentum=0.9, scheduler="LinearLR"),
    _AccumulationCase("micro-batches of different sizes", [5, 11, 3, 9, 16, 1, 7], 2, lr=0.3,
                      weight_decay=0.1),
    _AccumulationCase("accumulation_steps=1 (no accumulation), Adam", [10] * 4, 1, optimizer="Adam", lr=0.01),
    _AccumulationCase("fewer micro-batches than accumulation_steps: one step", [6, 6, 3], 5, lr=0.4),
)
HIDDEN_ACCUMULATION_CASES = (
    _AccumulationCase("hidden: 3 uneven groups, another model", [7, 7, 7, 7, 7, 4, 13], 3, seed=5, lr=0.2,
                      momentum=0.5, nesterov=True),
)


def _big_batch_run(c):
    """The oracle: every group of micro-batches concatenated into one batch, one plain step each."""
    model, optimizer, scheduler = c.build()
    batches = _micro_batches(c.sizes)
    record = _recorder(optimizer)
    losses = []
    for start in range(0, len(batches), c.k):
        group = batches[start:start + c.k]
        x, y = torch.cat([b[0] for b in group]), torch.cat([b[1] for b in group])
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return _accumulation_record(record, model, scheduler, losses)


def _recorder(optimizer):
    """Every optimizer step's gradients and lr, recorded by a step pre-hook."""
    record = {"grads": [], "lrs": []}

    def hook(opt, args, kwargs):
        record["grads"].append([None if p.grad is None else p.grad.clone()
                                for g in opt.param_groups for p in g["params"]])
        record["lrs"].append(opt.param_groups[0]["lr"])

    optimizer.register_step_pre_hook(hook)
    return record


def _accumulation_record(record, model, scheduler, losses):
    return {**record, "scheduler steps": scheduler.last_epoch,
            "weights": [p.detach().clone() for p in model.parameters()], "losses": losses}


def _accumulated_run(fn, c, label=None):
    model, optimizer, scheduler = c.build()
    record = _recorder(optimizer)
    with case(label):
        losses = fn(model, nn.functional.cross_entropy, optimizer, scheduler, _micro_batches(c.sizes), c.k)
    return _accumulation_record(record, model, scheduler, losses)


def _compare_accumulation(label, expected, got):
    """Raise Mismatch at the first difference: steps taken, gradient, lr, scheduler, weights, losses."""
    n = len(expected["grads"])
    if len(got["grads"]) != n:
        raise Mismatch(label, f"{n} optimizer steps", f"{len(got['grads'])}",
                       detail="one optimizer step per accumulation_steps micro-batches (the last group "
                              "may be shorter)")
    for k in range(n):
        for i, (e, g) in enumerate(zip(expected["grads"][k], got["grads"][k])):
            if g is None:
                raise Mismatch(label, e, None, step=k + 1, detail=f"parameter {i}'s .grad at optimizer step")
            expect_close(label, e, g, step=k + 1,
                         what=f"the gradient of parameter {i} when optimizer.step() ran (the big batch's)")
        expect_close(label, expected["lrs"][k], got["lrs"][k], step=k + 1,
                     what="the lr at this optimizer step")
    expect_close(label, float(expected["scheduler steps"]), float(got["scheduler steps"]),
                 what="the scheduler's steps at the end (scheduler.last_epoch)")
    expect_close(label, expected["weights"], got["weights"], what="the weights at the end")
    losses = got["losses"]
    if not isinstance(losses, (list, tuple)) or not all(_is_number(v) for v in losses):
        raise Mismatch(label, f"{n} floats", type(losses).__name__, detail="the returned losses",
                       cause="return a list with the loss of each optimizer step, as floats (loss.item())")
    expect_close(label, expected["losses"], list(losses),
                 what="the returned losses (each optimizer step's mean loss over its samples)")


def _same_accumulation(a, b):
    try:
        _compare_accumulation("", a, b)
    except Mismatch:
        return False
    return True


def _accumulation_wrong(*, scale="samples", zero_inside=False, zero_never=False, scheduler_per_micro=False,
                        loss="weighted"):
    def wrong(model, loss_fn, optimizer, scheduler, micro_batches, accumulation_steps):
        losses = []
        for start in range(0, len(micro_batches), accumulation_steps):
            group = micro_batches[start:start + accumulation_steps]
            n_group = sum(len(y) for _, y in group)
            if not zero_never:
                optimizer.zero_grad()
            parts = []
            for x, y in group:
                if zero_inside:
                    optimizer.zero_grad()
                raw = loss_fn(model(x), y)
                weight = {"samples": len(y) / n_group, "none": 1.0, "k": 1 / accumulation_steps,
                          "count": 1 / len(group)}[scale]
                (raw * weight).backward()
                parts.append((raw.item(), len(y) / n_group))
                if scheduler_per_micro:
                    scheduler.step()
            optimizer.step()
            if not scheduler_per_micro:
                scheduler.step()
            losses.append(sum(v * w for v, w in parts) if loss == "weighted" else
                          sum(v for v, _ in parts) / len(parts))
        return losses
    return wrong


ACCUMULATION_MISTAKES = {
    "the losses are not scaled: the gradients of the micro-batches add up, so the step is k times that of "
    "the big batch; multiply each micro-batch's mean loss by n_micro/n_group before backward()":
        _accumulation_wrong(scale="none"),
    "you divided each loss by accumulation_steps: right only when every group has k micro-batches of the "
    "same size. Weight each micro-batch's mean loss by its share of the group's samples, n_micro/n_group":
        _accumulation_wrong(scale="k"),
    "you divided each loss by the number of micro-batches in the group: right only when they have the "
    "same size. Weight each micro-batch's mean loss by its share of the group's samples, n_micro/n_group":
        _accumulation_wrong(scale="count"),
    "zero_grad() inside the micro-batch loop throws away the gradients accumulated so far: only the last "
    "micro-batch counts. Call it once per optimizer step, before the group's first backward()":
        _accumulation_wrong(zero_inside=True),
    "the gradients are never zeroed: every optimizer step adds the previous ones. optimizer.zero_grad() "
    "once per group":
        _accumulation_wrong(zero_never=True),
    "the scheduler is stepped after every micro-batch: the schedule counts optimizer steps, so step it "
    "once per optimizer.step()":
        _accumulation_wrong(scheduler_per_micro=True),
    "the returned loss is the plain mean of the micro-batch losses: on uneven micro-batches weight them "
    "by n_micro/n_group, as the gradient does":
        _accumulation_wrong(loss="mean"),
}


@exercise("10.5", "Gradient accumulation", reference=recipes.train_accumulated,
          library=[recipes.train_accumulated], hints=[
    "Walk over the micro-batches in groups of accumulation_steps (the last group may be shorter): one "
    "zero_grad(), a backward() per micro-batch, then one optimizer.step() and one scheduler.step().",
    "The big batch's loss is the mean over all the group's samples. A micro-batch's mean loss covers "
    "n_micro of the group's n_group samples: multiply it by n_micro / n_group before backward(), so the "
    "gradients add up to the big batch's. The returned loss adds up the same weighted losses.",
    "for start in range(0, len(micro_batches), accumulation_steps): group = micro_batches[start:start + "
    "accumulation_steps]; n = sum(len(y) for _, y in group); optimizer.zero_grad(); total = 0.0; for x, y "
    "in group: loss = loss_fn(model(x), y) * len(y) / n; loss.backward(); total += loss.item(); then "
    "optimizer.step(); scheduler.step(); losses.append(total)",
])
def check_train_accumulated(candidate):
    cases = ACCUMULATION_CASES + (HIDDEN_ACCUMULATION_CASES if hidden_pass() else ())
    _replayed_runs(candidate, cases, reference_run=_big_batch_run, run=_accumulated_run,
                   compare=_compare_accumulation, same=_same_accumulation, mistakes=ACCUMULATION_MISTAKES)
    return (f"{len(cases)} runs (even and uneven micro-batches, a short last group, k = 1, one step; SGD "
            "with momentum, weight decay, Adam; StepLR, LinearLR): at every optimizer step the gradient and "
            "lr of one big batch, the scheduler stepped per optimizer step, the same weights and losses")


# --------------------------------------------------------------------------
# 10.6 — an exponential moving average of the weights
# --------------------------------------------------------------------------


def _bn_model(seed):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).double()


class _EMACase:
    def __init__(self, name, decay, *, use_buffers=False, start=3, every=1, steps=12, seed=0, model="bn"):
        self.name, self.decay, self.use_buffers = name, decay, use_buffers
        self.start, self.every, self.steps, self.seed, self.model = start, every, steps, seed, model

    @property
    def label(self):
        return (f"{self.name}: decay={self.decay}, use_buffers={self.use_buffers}, updates from step "
                f"{self.start} every {self.every} of {self.steps} training steps")

    def build(self):
        return _bn_model(self.seed) if self.model == "bn" else mlp(seed=self.seed, hidden=8).double()


EMA_CASES = (
    _EMACase("first update after 3 training steps", 0.9),
    _EMACase("averaged buffers (BatchNorm's running statistics)", 0.8, use_buffers=True, start=2, steps=10),
    _EMACase("an update before any training step", 0.7, start=0, steps=6, model="mlp"),
    _EMACase("150 training steps, updated every 5th", 0.95, start=20, every=5, steps=150, model="mlp"),
)
HIDDEN_EMA_CASES = (
    _EMACase("hidden: another seed, buffers averaged", 0.6, use_buffers=True, start=1, every=2, steps=14,
             seed=7),
)


def _float_state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}


def _ema_run(cls, c, label=None):
    """Move c's model through c.steps seeded "training steps" (a random step of every weight, and a
    forward pass in train mode, which moves BatchNorm's running statistics), updating
    cls(model, decay, use_buffers) as the case says: the averaged module's float state after every
    update, the live model's first tensor update_parameters changed (None if none), and ema(x)."""
    model = c.build()
    generator = torch.Generator().manual_seed(c.seed + 100)
    inputs = 6 if c.model == "bn" else 64
    with case(label):
        ema = cls(model, c.decay, use_buffers=c.use_buffers)
    if not isinstance(ema, nn.Module):
        raise Mismatch(label, "an nn.Module", type(ema).__name__,
                       cause="EMA must be an nn.Module (class EMA(nn.Module)) whose forward runs self.module")
    states, touched = [], []
    for step in range(c.steps + 1):
        if step >= c.start and (step - c.start) % c.every == 0:
            before = _float_state(model)
            with case(label):
                ema.update_parameters(model)
            after = _float_state(model)
            touched.append(next((k for k in before if not torch.equal(before[k], after[k])), None))
            module = getattr(ema, "module", None)
            if not isinstance(module, nn.Module):
                raise Mismatch(label, "an nn.Module in self.module", type(module).__name__,
                               cause="keep the averaged copy in self.module (copy.deepcopy(model))")
            states.append(_float_state(module))
        if step < c.steps:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype), alpha=0.1)
                if c.model == "bn":
                    model(torch.randn(8, inputs, generator=generator, dtype=torch.float64))
    probe = torch.randn(5, inputs, generator=generator, dtype=torch.float64)
    with case(label):
        ema.eval()
        outputs = ema(probe), ema.module(probe)
    mine, theirs = list(ema.module.parameters()), list(model.parameters())
    shared = any(p.data_ptr() == q.data_ptr() for p in mine for q in theirs)
    return {"states": states, "touched": touched, "outputs": outputs, "shared": shared}


def _same_ema(a, b):
    return len(a["states"]) == len(b["states"]) and all(
        e.keys() == g.keys() and all(_matches(e[k], g[k]) for k in e)
        for e, g in zip(a["states"], b["states"]))


def _compare_ema(label, expected, got):
    if got["shared"]:
        raise Mismatch(label, cause="self.module shares its tensors with the live model: the average must "
                                    "be a copy, self.module = copy.deepcopy(model)")
    for k, (e, g, touched) in enumerate(zip(expected["states"], got["states"], got["touched"]), start=1):
        if touched is not None:
            raise Mismatch(label, step=k, detail=f"the live model's {touched} changed in update_parameters",
                           cause="update_parameters(model) must update only the average (self.module), never "
                                 "the model it reads from")
        for key in e:
            if key not in g:
                raise Mismatch(label, step=k, detail=f"self.module has no {key}",
                               cause="self.module must be a copy of the whole model")
            kind = "buffer" if "running" in key else "parameter"
            expect_close(label, e[key], g[key], step=k,
                         what=f"the averaged {kind} {key} after update {k}")
    outputs, module_outputs = got["outputs"]
    expect_close(label, module_outputs, outputs, what="ema(x), which must be ema.module(x) (in eval mode)")


class _EMAWrong(recipes.EMA):
    """recipes.EMA with one mistake switched on by a class attribute."""

    swapped = no_copy = buffers_forgotten = buffers_not_averaged = False

    @torch.no_grad()
    def update_parameters(self, model):
        averaged = self.use_buffers and not self.buffers_not_averaged
        mine, theirs = [*self.module.parameters()], [*model.parameters()]
        if averaged:
            mine, theirs = mine + [*self.module.buffers()], theirs + [*model.buffers()]
        pairs = zip(mine, theirs)
        for mine, theirs in pairs:
            if self.n_averaged == 0 and not self.no_copy:
                mine.copy_(theirs)
            elif mine.is_floating_point():
                mine.lerp_(theirs, self.decay if self.swapped else 1 - self.decay)
            else:
                mine.copy_(theirs)
        if not averaged and not self.buffers_forgotten:
            for mine, theirs in zip(self.module.buffers(), model.buffers()):
                mine.copy_(theirs)
        self.n_averaged += 1


def _ema_switch(**switches):
    return type("EMA(" + ", ".join(switches) + ")", (_EMAWrong,), switches)


EMA_MISTAKES = {
    "decay and 1 − decay are swapped: the average keeps decay of itself, θ_ema ← decay·θ_ema + "
    "(1 − decay)·θ, i.e. θ_ema.lerp_(θ, 1 − decay)": _ema_switch(swapped=True),
    "the first update must copy the model (torch's AveragedModel starts the average there, "
    "n_averaged == 0); yours averages in the weights from construction time too":
        _ema_switch(no_copy=True),
    "the buffers (BatchNorm's running mean and variance) are left as they were at construction: without "
    "use_buffers, copy them from the model at every update": _ema_switch(buffers_forgotten=True),
    "with use_buffers=True the buffers are averaged like the parameters; you copied them":
        _ema_switch(buffers_not_averaged=True),
}


@exercise("10.6", "An EMA of the weights", reference=recipes.EMA,
          library=[recipes.EMA, swa_utils.AveragedModel, swa_utils.get_ema_multi_avg_fn,
                   swa_utils.get_ema_avg_fn, our_swa.AveragedModel, our_swa.get_ema_multi_avg_fn,
                   our_swa.get_ema_avg_fn], hints=[
    "__init__: self.module = copy.deepcopy(model), and a counter of updates, 0. update_parameters: on the "
    "first update copy the model's tensors, afterwards θ_ema ← decay·θ_ema + (1 − decay)·θ.",
    "Under torch.no_grad(), zip self.module.parameters() with model.parameters() (and the buffers too "
    "when use_buffers; otherwise copy the buffers over). θ_ema.lerp_(θ, 1 − decay) is the update; an "
    "integer buffer (num_batches_tracked) cannot lerp: copy it.",
    "for mine, theirs in pairs: if self.n_averaged == 0: mine.copy_(theirs) elif mine.is_floating_point(): "
    "mine.lerp_(theirs, 1 - self.decay) else: mine.copy_(theirs); then, if not self.use_buffers, copy "
    "every buffer; self.n_averaged += 1",
])
def check_ema(candidate):
    cases = EMA_CASES + (HIDDEN_EMA_CASES if hidden_pass() else ())
    _replayed_runs(candidate, cases, reference_run=lambda c: _ema_run(recipes.EMA, c), run=_ema_run,
                   compare=_compare_ema, same=_same_ema, mistakes=EMA_MISTAKES)
    return (f"{len(cases)} runs (first update after training and before it, buffers copied and averaged, "
            "150 steps with sparse updates): after every update the averaged weights and float buffers of "
            "AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay)), the live model untouched")



# --------------------------------------------------------------------------
# 10.7 — mixed precision: the scheduler stepped only when the optimizer stepped
# --------------------------------------------------------------------------


class _AmpCase:
    def __init__(self, name, steps, broken, max_norm, *, growth_interval=1000, seed=0, lr=0.1):
        self.name, self.steps, self.broken, self.max_norm = name, steps, frozenset(broken), max_norm
        self.growth_interval, self.seed, self.lr = growth_interval, seed, lr

    @property
    def label(self):
        return (f"{self.name}: {self.steps} steps, an inf in the batch of steps {sorted(self.broken)}, "
                f"max_norm={self.max_norm}, GradScaler(growth_interval={self.growth_interval})")


AMP_CASES = (
    _AmpCase("a broken batch at steps 1 and 4", 6, (1, 4), 0.5),
    _AmpCase("the scale doubles after every 3 good steps", 8, (5,), 0.5, growth_interval=3, seed=1),
    _AmpCase("clipping at max_norm=0.05 acts on every step", 5, (2,), 0.05, seed=2, lr=0.5),
)
HIDDEN_AMP_CASES = (
    _AmpCase("hidden: broken batches at steps 2, 3 and 7, growth every 2 steps", 9, (2, 3, 7), 0.2,
             growth_interval=2, seed=4),
)


def _amp_run(fn, c, label=None):
    """Per step: the returned value, the weights, the scale, the scheduler's steps and the lr."""
    x_all, y_all = _task()
    model = mlp(seed=c.seed, hidden=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=c.lr, momentum=0.5)
    scheduler = S.StepLR(optimizer, step_size=1, gamma=0.8)
    scaler = torch.amp.GradScaler("cpu", growth_interval=c.growth_interval)
    rows, loss_fn = [], nn.functional.cross_entropy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scheduler-before-optimizer warning a wrong answer triggers
        for step in range(1, c.steps + 1):
            x = x_all[16 * step:16 * step + 16].float()
            if step in c.broken:
                x[0, 0] = math.inf
            y = y_all[16 * step:16 * step + 16]
            with case(label):
                stepped = fn(model, loss_fn, x, y, optimizer, scaler, scheduler, c.max_norm)
            rows.append({"returned": stepped, "weights": [p.detach().clone() for p in model.parameters()],
                         "scale": scaler.get_scale(), "scheduler steps": scheduler.last_epoch,
                         "lr": optimizer.param_groups[0]["lr"]})
    return rows


def _compare_amp(label, expected, got):
    for step, (e, g) in enumerate(zip(expected, got), start=1):
        if not isinstance(g["returned"], bool):
            raise Mismatch(label, e["returned"], g["returned"], step=step,
                           cause="return True if the optimizer stepped, False if the scaler skipped the step")
        if g["returned"] != e["returned"]:
            raise Mismatch(label, e["returned"], g["returned"], step=step,
                           detail="the returned value: did the optimizer step?")
        expect_close(label, e["weights"], g["weights"], step=step, what="the weights after the step")
        expect_close(label, e["scale"], g["scale"], step=step, what="scaler.get_scale() after the step")
        expect_close(label, float(e["scheduler steps"]), float(g["scheduler steps"]), step=step,
                     what="the scheduler's steps so far (scheduler.last_epoch)")


def _same_amp(a, b):
    try:
        _compare_amp("", a, b)
    except Mismatch:
        return False
    return True


def _amp_wrong(*, always=False, changed=False, clip_scaled=False, no_clip=False, no_zero_grad=False,
               step_value=False):
    def wrong(model, loss_fn, x, y, optimizer, scaler, scheduler, max_norm):
        if not no_zero_grad:
            optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        if clip_scaled and not no_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scaler.unscale_(optimizer)
        if not clip_scaled and not no_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        scale = scaler.get_scale()
        answer = scaler.step(optimizer)
        scaler.update()
        if step_value:
            stepped = answer is not None
        else:
            stepped = scaler.get_scale() == scale if changed else scaler.get_scale() >= scale
        if stepped or always:
            scheduler.step()
        return stepped
    return wrong


AMP_MISTAKES = {
    "the scheduler steps on every call, also when the scaler skipped the optimizer's step: the lr decays "
    "for updates that never happened. Step it only when the scale did not drop":
        _amp_wrong(always=True),
    "you took a changed scale for a skipped step: the scale also grows (×2 after growth_interval good "
    "steps). Only a skipped step lowers it: stepped = scaler.get_scale() >= the scale before update()":
        _amp_wrong(changed=True),
    "you clipped the scaled gradients: call scaler.unscale_(optimizer) first, then clip_grad_norm_, "
    "otherwise max_norm applies to gradients S times too large":
        _amp_wrong(clip_scaled=True),
    "the gradients are not clipped: torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm) after "
    "unscale_, before scaler.step":
        _amp_wrong(no_clip=True),
    "the gradients are never zeroed: they add up over the steps (and a skipped step's NaN gradients stay). "
    "optimizer.zero_grad() at the start":
        _amp_wrong(no_zero_grad=True),
    "scaler.step(optimizer) returns what optimizer.step() returns (None without a closure), whether the "
    "step was taken or skipped: it cannot tell you. Compare the scale before and after scaler.update()":
        _amp_wrong(step_value=True),
}


@exercise("10.7", "Step the scheduler only when the optimizer stepped", reference=recipes.amp_train_step,
          library=[recipes.amp_train_step], hints=[
    "The order: optimizer.zero_grad(); forward and loss inside torch.autocast(\"cpu\", "
    "dtype=torch.bfloat16); scaler.scale(loss).backward(); scaler.unscale_(optimizer); clip; "
    "scaler.step(optimizer); scaler.update().",
    "When a step is skipped, scaler.update() multiplies the scale by backoff_factor (0.5); otherwise it "
    "keeps it or grows it. So remember scale = scaler.get_scale() before update() and compare after.",
    "scale = scaler.get_scale(); scaler.step(optimizer); scaler.update(); stepped = scaler.get_scale() >= "
    "scale; if stepped: scheduler.step(); return stepped",
])
def check_amp_train_step(candidate):
    cases = AMP_CASES + (HIDDEN_AMP_CASES if hidden_pass() else ())
    _replayed_runs(candidate, cases, reference_run=lambda c: _amp_run(recipes.amp_train_step, c),
                   run=_amp_run, compare=_compare_amp, same=_same_amp, mistakes=AMP_MISTAKES)
    return (f"{len(cases)} runs (skipped steps, a growing scale, clipping that acts): at every step the "
            "weights, the scale, the returned value and the scheduler's steps of the reference, the "
            "scheduler stepped only when the optimizer was")
