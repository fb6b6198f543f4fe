"""Notebook 11, beyond Adam: Lion, Newton–Schulz, Muon's step, RAdam's rectification,
Adafactor's factored second moment and Schedule-Free SGD.

The optimizers (11.1, 11.6) are stepped next to ``helpers.optim`` with
``compare_optimizer`` and then through ``_contract``: state empty before the first
step and absent for a parameter that never has a gradient, ``group["lr"]`` changed
between steps, a group added mid-run with its own settings, a state_dict round trip.
The functions (11.2–11.5) run next to a reference on every case, in float64 where
rounding would be amplified. Each list of mistakes holds the typical wrong versions,
written as the reference with one switch; a cause is named only when its replay
gives the candidate's numbers on the failing case and every case before it.
"""

import math

import torch

from helpers.checking import Mismatch, case, exercise, hidden_pass
from helpers.checking_tools import OptimCase, compare_function, compare_optimizer, expect_close
from helpers.optim import Lion, Muon, RAdam, SGDScheduleFree
from helpers.optim.muon import adjusted_lr
from helpers.optim.muon import newton_schulz as _muon_newton_schulz

from ._per_parameter import PerParameter

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def _switches(base, **mistake):
    """A subclass of ``base`` with the given class attributes (the mistake's switches)."""
    name = base.__name__ + "(" + ", ".join(f"{k}={v}" for k, v in mistake.items()) + ")"
    return type(name, (base,), mistake)


# --------------------------------------------------------------------------
# The contract beyond compare_optimizer
# --------------------------------------------------------------------------


def _contract(candidate, reference, settings, extra_group, label, *, prepare=None, keys=()):
    """Both classes through the same mid-run changes; parameters compared after every step.

    Parameter 0 never gets a gradient (no state for it); ``group["lr"]`` is scaled by 0.8
    before every step; after step 3 ``add_param_group`` adds a parameter with
    ``extra_group``'s settings; after step 6 the state_dict goes into a fresh optimizer
    of the same class, which takes the last 4 steps. ``prepare(optimizer)`` runs after
    each construction (Schedule-Free: ``train()``), ``keys`` are the state keys required.
    """
    generator = torch.Generator().manual_seed(11)
    start = [torch.randn(s, generator=generator, dtype=torch.float64) for s in ((3,), (2, 3), (4,))]
    grads = [[torch.randn(s.shape, generator=generator, dtype=torch.float64) for s in start]
             for _ in range(10)]
    runs = []
    for cls in (reference, candidate):
        params = [s.clone().requires_grad_() for s in start]
        with case(label):
            optimizer = cls(params[:2], **settings)
            if prepare:
                prepare(optimizer)
        filled = [p for p, state in optimizer.state.items() if state]
        if cls is candidate and filled:
            raise Mismatch(label, "an empty optimizer.state before the first step()",
                           f"state for {len(filled)} parameters",
                           cause="create a parameter's state on its first update (if not state: …), "
                                 "not in __init__: torch's state is empty until step()")
        history = []
        for k in range(1, 11):
            with case(f"{label} (step {k})"):
                if k == 4:
                    optimizer.add_param_group({"params": [params[2]], **extra_group})
                if k == 7:
                    if prepare:
                        optimizer.eval()
                    saved = optimizer.state_dict()
                    optimizer = cls(optimizer.param_groups[0]["params"], **settings)
                    optimizer.add_param_group({"params": [params[2]], **extra_group})
                    optimizer.load_state_dict(saved)
                    if prepare:
                        prepare(optimizer)
                for group in optimizer.param_groups:
                    group["lr"] *= 0.8
                params[0].grad = None
                for p, g in zip(params[1:], grads[k - 1][1:]):
                    p.grad = g.clone()
                optimizer.step()
            history.append([p.detach().clone() for p in params])
        runs.append((params, optimizer, history))
    (_, _, expected), (params, optimizer, got) = runs
    events = {1: "", 4: ", right after add_param_group added parameter 2 with "
              f"{extra_group}", 7: ", right after the state_dict round trip"}
    for k, (e, g) in enumerate(zip(expected, got), start=1):
        for i, (ei, gi) in enumerate(zip(e, g)):
            expect_close(label + events.get(k, ""), ei, gi, what=f"parameter {i}", step=k)
    if params[0] in optimizer.state and optimizer.state[params[0]]:
        raise Mismatch(label, "no state for parameter 0 (its .grad is always None)",
                       f"keys {sorted(optimizer.state[params[0]])}",
                       cause="skip parameters whose .grad is None before creating their state")
    for key in keys:
        if key not in optimizer.state[params[1]]:
            raise Mismatch(label, f"state[p][{key!r}]", f"keys {sorted(optimizer.state[params[1]])}",
                           cause=f"keep it in state[p][{key!r}], the key the notebook's later cells "
                                 "(and the library's state_dict) use")
    return ("state empty before step 1 and never created for a parameter without gradient, "
            "lr changed before every step, add_param_group after step 3, "
            "state_dict round trip after step 6")


# --------------------------------------------------------------------------
# 11.1 Lion
# --------------------------------------------------------------------------


class _Lion(PerParameter):
    """Lion through the notebook's update(); class attributes switch one mistake on."""

    momentum_first = decay_without_lr = l2_in_sign = sign_of_momentum = betas_swapped = False
    decay_after = False

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay,
                                  "maximize": maximize})

    def update(self, p, grad, state, group):
        beta1, beta2 = group["betas"][::-1] if self.betas_swapped else group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if not state:
            state["exp_avg"] = torch.zeros_like(p)
        g = -grad if group["maximize"] else grad
        if self.l2_in_sign:
            g = g + wd * p
        m = state["exp_avg"]
        if self.momentum_first:
            m.lerp_(g, 1 - beta2)
        c = m.lerp(g, 1 - beta2) if self.sign_of_momentum else m.lerp(g, 1 - beta1)
        if not (self.l2_in_sign or self.decay_after):
            p.mul_(1 - wd if self.decay_without_lr else 1 - lr * wd)
        p.add_(c.sign(), alpha=-lr)
        if self.decay_after:
            p.mul_(1 - lr * wd)
        if not self.momentum_first:
            m.lerp_(g, 1 - beta2)


LION_MISTAKES = {
    "you updated the momentum m before computing the update: the sign is taken of "
    "c = β₁·m + (1 − β₁)·g with the *old* m, and only then m ← β₂·m + (1 − β₂)·g":
        _switches(_Lion, momentum_first=True),
    "your update is the sign of the new momentum β₂·m + (1 − β₂)·g; Lion takes the sign of "
    "the interpolation with β₁, c = β₁·m + (1 − β₁)·g, and uses β₂ only for m":
        _switches(_Lion, sign_of_momentum=True),
    "β₁ and β₂ are swapped: β₁ interpolates the update, β₂ (the larger) decays the momentum":
        _switches(_Lion, betas_swapped=True),
    "your weight decay has no lr factor: θ ← θ·(1 − lr·λ), as in AdamW":
        _switches(_Lion, decay_without_lr=True),
    "you added λ·θ to the gradient (an L2 penalty, inside the sign); Lion's decay is "
    "decoupled: θ ← θ·(1 − lr·λ), outside the sign": _switches(_Lion, l2_in_sign=True),
    "you decayed the weights after the sign step; decay θ first, θ ← θ·(1 − lr·λ), then "
    "θ ← θ − lr·sign(c) (the order changes the numbers when λ ≠ 0)":
        _switches(_Lion, decay_after=True),
}

LION_CASES = [
    OptimCase("first steps", lr=0.01),
    OptimCase("default settings"),
    OptimCase("betas (0.5, 0.8)", lr=0.01, betas=(0.5, 0.8)),
    OptimCase("weight decay", lr=0.01, weight_decay=0.5),
    OptimCase("maximize", lr=0.01, weight_decay=0.1, maximize=True),
    OptimCase("grad None", lr=0.01, grad_none={1: [1, 2], 2: [3]}),
    OptimCase("two groups, every setting differs", lr=0.01, betas=(0.9, 0.99), weight_decay=0.1,
              groups=[{}, {"lr": 0.003, "betas": (0.6, 0.95), "weight_decay": 0.7,
                           "maximize": True}]),
    OptimCase("float64", lr=0.01, weight_decay=0.2, dtype=torch.float64),
]
LION_LONG = [OptimCase("150 steps", lr=0.003, betas=(0.8, 0.9), weight_decay=0.3,
                       dtype=torch.float64)]


@exercise("11.1", "Lion", reference=Lion, library=[Lion], hints=[
    ("One state tensor, state['exp_avg'] (m), zeros like p. Every update: the direction is "
     "the sign of c = β₁·m + (1 − β₁)·g, computed with the old m; then m is updated with β₂."),
    ("Order: c = m.lerp(g, 1 − β₁) (a new tensor); θ ← θ·(1 − lr·λ); θ ← θ − lr·sign(c); "
     "m.lerp_(g, 1 − β₂). g = −grad when maximize."),
    ("beta1, beta2 = group['betas']; c = state['exp_avg'].lerp(g, 1 - beta1); "
     "p.mul_(1 - group['lr'] * group['weight_decay']); p.add_(c.sign(), alpha=-group['lr']); "
     "state['exp_avg'].lerp_(g, 1 - beta2)."),
])
def check_lion(candidate):
    verified = compare_optimizer(candidate, Lion, LION_CASES, steps=8, mistakes=LION_MISTAKES)
    compare_optimizer(candidate, Lion, LION_LONG, steps=150, mistakes=LION_MISTAKES)
    contract = _contract(candidate, Lion, {"lr": 0.01, "betas": (0.8, 0.9), "weight_decay": 0.1},
                         {"lr": 0.02, "betas": (0.5, 0.7), "weight_decay": 0.4, "maximize": True},
                         "mid-run changes", keys=("exp_avg",))
    return f"{verified}; 150 steps; {contract}; the state key 'exp_avg'"


# --------------------------------------------------------------------------
# 11.2 One Newton–Schulz orthogonalization, in the input's dtype
# --------------------------------------------------------------------------


def newton_schulz(G, steps=5, coefficients=NS_COEFFICIENTS, eps=1e-7):
    """Muon's orthogonalization (helpers.optim.muon.newton_schulz) in G's own dtype."""
    return _muon_newton_schulz(G, coefficients, steps, eps, dtype=G.dtype)


def _ns_wrong(*, normalize=True, eps_added=False, swapped=False, fewer=0, gram_right=False):
    def wrong(G, steps=5, coefficients=NS_COEFFICIENTS, eps=1e-7):
        a, b, c = coefficients
        if swapped:
            b, c = c, b
        tall = G.size(0) > G.size(1)
        X = G.T if tall else G
        if normalize:
            X = X / (X.norm() + eps if eps_added else X.norm().clamp(min=eps))
        for _ in range(steps - fewer):
            A = X.T @ X if gram_right else X @ X.T
            X = a * X + (b * A + c * A @ A) @ X
        return X.T if tall else X
    return wrong


NS_MISTAKES = {
    "you did not divide G by its Frobenius norm first: the iteration needs every singular "
    "value ≤ 1 to converge (X = G / max(‖G‖, ε))": _ns_wrong(normalize=False),
    "b and c are swapped: X ← a·X + (b·A + c·A²)·X with A = X·Xᵀ, (a, b, c) = coefficients":
        _ns_wrong(swapped=True),
    "you ran one iteration fewer than `steps`": _ns_wrong(fewer=1),
    "you used A = Xᵀ·X; with the update (b·A + c·A²)·X it must be A = X·Xᵀ":
        _ns_wrong(gram_right=True),
    "you divided by ‖G‖ + ε; Muon divides by max(‖G‖, ε) (the difference shows when ‖G‖ "
    "is tiny)": _ns_wrong(eps_added=True),
}


def _matrix(rows, cols, seed, dtype=torch.float64, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(rows, cols, generator=generator, dtype=dtype)


NS_CASES = {  # 1 step on a square G first: every mistake below is still finite there
    "square 4×4, 1 step": {"G": _matrix(4, 4, 8), "steps": 1},
    "wide 4×6, 1 step": {"G": _matrix(4, 6, 4), "steps": 1},
    "square 5×5, 5 steps": (_matrix(5, 5, 1),),
    "wide 4×7": (_matrix(4, 7, 2),),
    "tall 7×4": (_matrix(7, 4, 3),),
    "10 steps, the cubic (1.5, −0.5, 0)": {"G": _matrix(6, 3, 5), "steps": 10,
                                           "coefficients": (1.5, -0.5, 0.0)},
    "a tiny G (‖G‖ < ε)": {"G": _matrix(3, 4, 6, scale=1e-9)},
    "float32": (_matrix(4, 5, 7, dtype=torch.float32),),
}
NS_HIDDEN = {  # issue 15, grading: sizes, seeds and step counts the notebook never shows
    "hidden: tall 9×5, 3 steps": {"G": _matrix(9, 5, 18), "steps": 3},
    "hidden: wide 2×8, 7 steps": {"G": _matrix(2, 8, 19, scale=3.0), "steps": 7},
    "hidden: float32 6×6": (_matrix(6, 6, 17, dtype=torch.float32),),
}


@exercise("11.2", "One Newton–Schulz orthogonalization", reference=newton_schulz,
          library=[newton_schulz, _muon_newton_schulz], hints=[
    ("Normalize first: X = G / max(‖G‖_F, ε). Then repeat `steps` times: A = X·Xᵀ, "
     "X ← a·X + (b·A + c·A·A)·X. Return X in G's dtype, G untouched."),
    ("For a tall G (more rows than columns) work on Gᵀ and transpose the result back: "
     "X·Xᵀ is then the small Gram matrix. (Without the transpose the numbers are the same, "
     "only slower.)"),
    ("a, b, c = coefficients; X = G.T if G.size(0) > G.size(1) else G; "
     "X = X / X.norm().clamp(min=eps); for _ in range(steps): A = X @ X.T; "
     "X = a * X + (b * A + c * A @ A) @ X; return X.T if tall else X."),
])
def check_newton_schulz(candidate):
    return compare_function(candidate, newton_schulz, NS_HIDDEN if hidden_pass() else NS_CASES,
                            mistakes=NS_MISTAKES)


# --------------------------------------------------------------------------
# 11.3 Muon's update of one weight matrix
# --------------------------------------------------------------------------


def muon_step(p, grad, buf, lr, momentum=0.95, nesterov=True, weight_decay=0.1):
    """One Muon step of the matrix p, in place on p and on the momentum buffer buf."""
    buf.lerp_(grad, 1 - momentum)
    update = grad.lerp(buf, momentum) if nesterov else buf
    ortho = newton_schulz(update)
    p.mul_(1 - lr * weight_decay)
    p.add_(ortho, alpha=-adjusted_lr(lr, None, p.shape))


def _muon_wrong(*, no_nesterov=False, plain_sum=False, no_adjust=False, adjust_inverted=False,
                decay_without_lr=False, decay_after=False):
    def wrong(p, grad, buf, lr, momentum=0.95, nesterov=True, weight_decay=0.1):
        if plain_sum:
            buf.mul_(momentum).add_(grad)
        else:
            buf.lerp_(grad, 1 - momentum)
        update = grad.lerp(buf, momentum) if nesterov and not no_nesterov else buf
        ortho = newton_schulz(update)
        A, B = p.shape
        scale = lr if no_adjust else lr * math.sqrt(max(1, (B / A) if adjust_inverted else (A / B)))
        decay = 1 - (weight_decay if decay_without_lr else lr * weight_decay)
        if not decay_after:
            p.mul_(decay)
        p.add_(ortho, alpha=-scale)
        if decay_after:
            p.mul_(decay)
    return wrong


MUON_MISTAKES = {
    "you orthogonalize B itself: with nesterov=True it is the look-ahead (1 − μ)·g + μ·B, with "
    "B already updated (nesterov ignored, or the look-ahead taken with B before its update, "
    "which is the same)": _muon_wrong(no_nesterov=True),
    "your buffer is B ← μ·B + g (torch's docs); torch's code, and this exercise, average: "
    "B ← μ·B + (1 − μ)·g": _muon_wrong(plain_sum=True),
    "the lr is not adjusted to the shape: Muon steps by lr·√max(1, A/B) for an A × B matrix":
        _muon_wrong(no_adjust=True),
    "the shape adjustment is inverted: √max(1, A/B), with A the number of rows":
        _muon_wrong(adjust_inverted=True),
    "your weight decay has no lr factor: p ← p·(1 − lr·λ)": _muon_wrong(decay_without_lr=True),
    "you decayed the weights after the step: first p ← p·(1 − lr·λ), then the orthogonalized "
    "step": _muon_wrong(decay_after=True),
}


def _muon_args(rows, cols, seed, lr, **kwargs):
    return {"p": _matrix(rows, cols, seed), "grad": _matrix(rows, cols, seed + 1),
            "buf": _matrix(rows, cols, seed + 2, scale=0.5), "lr": lr, **kwargs}


MUON_CASES = {  # wide first: it tells an inverted shape adjustment from a missing one
    "wide 3×6, defaults": _muon_args(3, 6, 20, 0.02),
    "tall 6×3": _muon_args(6, 3, 10, 0.02),
    "nesterov=False, momentum 0.8": _muon_args(6, 3, 30, 0.05, momentum=0.8, nesterov=False),
    "weight_decay 0.5": _muon_args(4, 4, 40, 0.1, weight_decay=0.5),
    "weight_decay 0, lr 1": _muon_args(5, 2, 50, 1.0, weight_decay=0.0),
}
MUON_HIDDEN = {  # issue 15, grading: sizes, seeds and hyperparameters the notebook never shows
    "hidden: tall 8×3, lr 0.03, momentum 0.9": _muon_args(8, 3, 60, 0.03, momentum=0.9),
    "hidden: wide 2×5, nesterov=False, weight_decay 0.02": _muon_args(2, 5, 70, 0.07, nesterov=False,
                                                                      weight_decay=0.02),
}


@exercise("11.3", "Muon's update", reference=muon_step,
          library=[muon_step, Muon, torch.optim.Muon], hints=[
    ("Three parts: the momentum buffer (an average, in place), the matrix to orthogonalize "
     "(the Nesterov look-ahead, or B itself), and the step: decay, then move by the "
     "orthogonalized matrix times a shape-adjusted lr."),
    ("B ← μ·B + (1 − μ)·g (buf.lerp_(grad, 1 − μ)); U = (1 − μ)·g + μ·B if nesterov else B; "
     "O = newton_schulz(U); p ← p·(1 − lr·λ); p ← p − lr·√max(1, A/B)·O for p of shape A × B."),
    ("buf.lerp_(grad, 1 - momentum); update = grad.lerp(buf, momentum) if nesterov else buf; "
     "A, B = p.shape; p.mul_(1 - lr * weight_decay); "
     "p.add_(newton_schulz(update), alpha=-lr * max(1, A / B) ** 0.5)."),
])
def check_muon_step(candidate):
    return compare_function(candidate, muon_step, MUON_HIDDEN if hidden_pass() else MUON_CASES,
                            mistakes=MUON_MISTAKES, in_place=True)


# --------------------------------------------------------------------------
# 11.4 RAdam's rectification term
# --------------------------------------------------------------------------


def rectification(t, beta2=0.999):
    """RAdam's r_t at step t (t = 1 is the first update), or None while ρ_t ≤ 5."""
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    if rho_t <= 5:
        return None
    return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


def _rect_wrong(*, threshold=5, no_factor_2=False, one_instead_of_none=False, no_sqrt=False,
                on_t=False):
    def wrong(t, beta2=0.999):
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - (1 if no_factor_2 else 2) * t * beta2**t / (1 - beta2**t)
        if (t if on_t else rho_t) <= threshold:
            return 1.0 if one_instead_of_none else None
        r2 = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        return r2 if no_sqrt else math.sqrt(r2)
    return wrong


RECT_MISTAKES = {
    "your threshold is ρ_t > 4 (the paper's); torch's RAdam rectifies only when ρ_t > 5":
        _rect_wrong(threshold=4),
    "ρ_t = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ): the factor 2 is missing": _rect_wrong(no_factor_2=True),
    "while ρ_t ≤ 5 return None (no adaptive step at all), not 1.0":
        _rect_wrong(one_instead_of_none=True),
    "r_t is the square root of (ρ_t − 4)(ρ_t − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρ_t)":
        _rect_wrong(no_sqrt=True),
    "you return None while t ≤ 5; the test is ρ_t ≤ 5, and how long ρ_t stays there depends on β₂":
        _rect_wrong(on_t=True),
}
RECT_CASES = [(1, 0.999), (5, 0.999), (6, 0.999), (7, 0.999), (10, 0.999), (100, 0.999),
              (10_000, 0.999), (3, 0.99), (8, 0.9), (50, 0.95), (9, 0.7)]  # β₂ = 0.7: ρ_t ≤ 5 until t = 11
RECT_HIDDEN = [(4, 0.9), (2, 0.99), (37, 0.999), (500, 0.98), (12, 0.9999),  # issue 15, grading
               (5, 0.99), (10, 0.75), (12, 0.7)]


@exercise("11.4", "RAdam's rectification term", reference=rectification,
          library=[rectification, RAdam, torch.optim.RAdam], hints=[
    ("ρ∞ = 2/(1 − β₂) − 1 and ρ_t = ρ∞ − 2t·β₂ᵗ/(1 − β₂ᵗ). If ρ_t ≤ 5, return None."),
    ("Otherwise r_t = √( (ρ_t − 4)(ρ_t − 2)·ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)·ρ_t) ), a float."),
    ("rho_inf = 2 / (1 - beta2) - 1; rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t); "
     "return None if rho_t <= 5 else math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / "
     "((rho_inf - 4) * (rho_inf - 2) * rho_t))."),
])
def check_rectification(candidate):
    seen = []
    hidden = hidden_pass()
    for t, beta2 in RECT_HIDDEN if hidden else RECT_CASES:
        name = ("hidden: " if hidden else "") + f"t={t}, beta2={beta2}"
        expected = rectification(t, beta2)
        with case(name):
            got = candidate(t, beta2)
        seen.append(((t, beta2), got))
        if not _same_rect(expected, got):
            cause = next((text for text, wrong in RECT_MISTAKES.items()
                          if all(_same_rect(wrong(*args), answer) for args, answer in seen)), None)
            raise Mismatch(name, "None" if expected is None else expected,
                           "None" if got is None else got, cause=cause,
                           detail=f"ρ_t {'≤' if expected is None else '>'} 5 here")
    return f"{len(RECT_CASES)} cases: t from 1 (ρ_t ≤ 5, None) to 10000, β₂ from 0.7 to 0.999"


def _same_rect(expected, got):
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return False
    return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-12)


# --------------------------------------------------------------------------
# 11.5 Adafactor's factored second moment
# --------------------------------------------------------------------------


def factored_second_moment(row_var, col_var, grad, one_minus_beta2, eps1=1e-30):
    """The new (R, C) and the rank-1 estimate V = R·C / max(mean(R), ε₁) of E[G²].

    ``row_var`` is n × 1, ``col_var`` 1 × m, ``grad`` n × m; the inputs stay unchanged.
    """
    R = row_var.lerp(grad.square().mean(dim=-1, keepdim=True), one_minus_beta2)
    C = col_var.lerp(grad.square().mean(dim=-2, keepdim=True), one_minus_beta2)
    return R, C, R @ C / R.mean().clamp(min=eps1)


def _factored_wrong(*, no_division=False, sums=False, beta_swapped=False, not_squared=False):
    def wrong(row_var, col_var, grad, one_minus_beta2, eps1=1e-30):
        g2 = grad if not_squared else grad.square()
        w = 1 - one_minus_beta2 if beta_swapped else one_minus_beta2
        reduce = torch.sum if sums else torch.mean
        R = row_var.lerp(reduce(g2, dim=-1, keepdim=True), w)
        C = col_var.lerp(reduce(g2, dim=-2, keepdim=True), w)
        return R, C, R @ C if no_division else R @ C / R.mean().clamp(min=eps1)
    return wrong


FACTORED_MISTAKES = {
    "V = R·C needs dividing by mean(R): both R and C carry the overall scale of G², so their "
    "product counts it twice": _factored_wrong(no_division=True),
    "R and C average G² (over the columns, resp. the rows); you summed": _factored_wrong(sums=True),
    "the weights are swapped: R ← (1 − w)·R + w·mean(G²) with w = one_minus_beta2 "
    "(R.lerp(mean, w))": _factored_wrong(beta_swapped=True),
    "the averages are of G², the squared gradient, not of G": _factored_wrong(not_squared=True),
}


def _factored_args(n, m, seed, w):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, generator=generator, dtype=torch.float64),
            torch.rand(1, m, generator=generator, dtype=torch.float64),
            torch.randn(n, m, generator=generator, dtype=torch.float64), w)


FACTORED_CASES = {
    "4×6, w = 0.3": _factored_args(4, 6, 1, 0.3),
    "first step (w = 1)": _factored_args(5, 3, 2, 1.0),
    "7×2, w = 0.05": _factored_args(7, 2, 3, 0.05),
    "zero state, tiny gradient, eps1 = 1e-3": {
        "row_var": torch.zeros(3, 1, dtype=torch.float64),
        "col_var": torch.zeros(1, 4, dtype=torch.float64),
        "grad": torch.full((3, 4), 1e-3, dtype=torch.float64), "one_minus_beta2": 0.5,
        "eps1": 1e-3},
}
FACTORED_HIDDEN = {  # issue 15, grading: sizes, seeds and weights the notebook never shows
    "hidden: 3×9, w = 0.2": _factored_args(3, 9, 11, 0.2),
    "hidden: 6×1, w = 0.7": _factored_args(6, 1, 12, 0.7),
}


@exercise("11.5", "Adafactor's factored second moment", reference=factored_second_moment,
          library=[factored_second_moment, torch.optim.Adafactor], hints=[
    ("R (n × 1) follows the mean of G² over each row's columns, C (1 × m) the mean over each "
     "column's rows, both as moving averages with weight w = one_minus_beta2. Return new "
     "tensors: (R, C, V)."),
    ("R_new = R + w·(mean(G², dim=-1) − R), C_new likewise with dim=-2 (keepdim=True). "
     "V = R_new·C_new / max(mean(R_new), ε₁): an n × m matrix from n + m numbers."),
    ("g2 = grad * grad; R = row_var.lerp(g2.mean(dim=-1, keepdim=True), one_minus_beta2); "
     "C = col_var.lerp(g2.mean(dim=-2, keepdim=True), one_minus_beta2); "
     "return R, C, R @ C / R.mean().clamp(min=eps1)."),
])
def check_factored(candidate):
    cases = FACTORED_HIDDEN if hidden_pass() else FACTORED_CASES
    return compare_function(candidate, factored_second_moment, cases, mistakes=FACTORED_MISTAKES,
                            what="(R, C, V)")


# --------------------------------------------------------------------------
# 11.6 Schedule-Free SGD
# --------------------------------------------------------------------------


class _SFSGD(torch.optim.Optimizer):
    """Schedule-Free SGD as the notebook's exercise class; class attributes switch a mistake on."""

    warmup_from_0 = uniform_average = decay_at_z = z_first = eval_swapped = False

    def __init__(self, params, lr=1.0, momentum=0.9, weight_decay=0, warmup_steps=0, r=0.0,
                 weight_lr_power=2.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "warmup_steps": warmup_steps, "r": r,
                                  "weight_lr_power": weight_lr_power, "k": 0, "train_mode": False,
                                  "weight_sum": 0.0, "lr_max": -1.0})

    @torch.no_grad()
    def _switch(self, to_train):
        for group in self.param_groups:
            if group["train_mode"] != to_train:
                beta = group["momentum"]
                weight = 1 - beta if to_train != self.eval_swapped else 1 - 1 / beta
                for p in group["params"]:
                    if "z" in self.state[p]:
                        p.lerp_(self.state[p]["z"], weight)
                group["train_mode"] = to_train

    def train(self):
        self._switch(True)

    def eval(self):
        self._switch(False)

    @torch.no_grad()
    def step(self, closure=None):
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError("call optimizer.train() before step()")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            k, beta = group["k"], group["momentum"]
            lr = group["lr"]
            if k < group["warmup_steps"]:
                lr *= (k if self.warmup_from_0 else k + 1) / group["warmup_steps"]
            group["lr_max"] = max(lr, group["lr_max"])
            power = 0 if self.uniform_average else group["weight_lr_power"]
            weight = (k + 1) ** group["r"] * group["lr_max"] ** power
            group["weight_sum"] += weight
            c = weight / group["weight_sum"] if group["weight_sum"] else 0.0
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["z"] = p.clone()
                z = state["z"]
                g = p.grad + group["weight_decay"] * (z if self.decay_at_z else p)
                if self.z_first:
                    z.sub_(g, alpha=lr)
                p.lerp_(z, c)
                p.add_(g, alpha=lr * (beta * (1 - c) - 1))
                if not self.z_first:
                    z.sub_(g, alpha=lr)
            group["k"] = k + 1
        return loss


SF_MISTAKES = {
    "your warmup starts at 0: step 1 (k = 0) already uses lr·(k + 1)/warmup_steps":
        _switches(_SFSGD, warmup_from_0=True),
    "your average gives every step the same weight; while lr warms up the weight is "
    "w_t = (t+1)^r · lr_max^weight_lr_power": _switches(_SFSGD, uniform_average=True),
    "the weight decay is computed at z; the gradient and its decay λ·y are taken at y, "
    "the parameter itself": _switches(_SFSGD, decay_at_z=True),
    "you moved z before updating y: y ← (1 − c)·y + c·z + … uses the old z, then z ← z − γ·g":
        _switches(_SFSGD, z_first=True),
}

SF_CASES = [
    OptimCase("lr 0.1", lr=0.1),
    OptimCase("default settings"),
    OptimCase("momentum 0.5, weight decay", lr=0.1, momentum=0.5, weight_decay=0.1),
    OptimCase("warmup 5", lr=0.2, warmup_steps=5),
    OptimCase("warmup, r = 1, weight_lr_power 1", lr=0.2, warmup_steps=4, r=1.0,
              weight_lr_power=1.0),
    OptimCase("grad None", lr=0.1, grad_none={1: [1, 2], 2: [3]}),
    OptimCase("two groups, every setting differs", lr=0.1, warmup_steps=3,
              groups=[{}, {"lr": 0.03, "momentum": 0.7, "weight_decay": 0.2, "warmup_steps": 6,
                           "r": 0.5, "weight_lr_power": 1.0}]),
    OptimCase("float64", lr=0.1, weight_decay=0.05, warmup_steps=3, dtype=torch.float64),
]
SF_LONG = [OptimCase("150 steps", lr=0.05, momentum=0.8, warmup_steps=40, r=0.5,
                     dtype=torch.float64)]


def _in_train_mode(cls):
    """``cls`` whose optimizers start in train mode, for compare_optimizer."""

    def __init__(self, *args, **kwargs):
        cls.__init__(self, *args, **kwargs)
        self.train()

    return type(cls.__name__, (cls,), {"__init__": __init__})


def _train_eval(candidate, label):
    """train()/eval() switches mid-run: the parameters must hold y, then x, as the reference's."""
    generator = torch.Generator().manual_seed(6)
    start = torch.randn(2, 3, generator=generator, dtype=torch.float64)
    grads = [torch.randn(2, 3, generator=generator, dtype=torch.float64) for _ in range(12)]
    script = ["train", 5, "eval", "eval", "train", "train", 4, "eval", "train", 3, "eval"]
    runs = []
    for cls in (SGDScheduleFree, candidate):
        p = start.clone().requires_grad_()
        with case(label):
            optimizer = cls([p], lr=0.1, momentum=0.8, warmup_steps=2)
        values, k = [], 0
        for action in script:
            with case(f"{label}: {action}" if isinstance(action, str) else label):
                if isinstance(action, str):
                    getattr(optimizer, action)()
                else:
                    for _ in range(action):
                        p.grad = grads[k].clone()
                        optimizer.step()
                        k += 1
            values.append((action, k, p.detach().clone()))
        runs.append(values)
    for (action, k, e), (_, _, g) in zip(*runs):
        what = ("the parameters after eval() (x, the average)" if action == "eval" else
                "the parameters after train() (y)" if action == "train" else "the parameters")
        try:
            expect_close(f"{label}, after {k} steps and {action!r}", e, g, what=what)
        except Mismatch as mismatch:
            if action in ("eval", "train") and mismatch.cause is None:
                mismatch.cause = (
                    "eval() sets p ← x = (y − (1 − β)·z)/β, i.e. p.lerp_(z, 1 − 1/β); train() "
                    "sets p ← y = (1 − β)·z + β·x, i.e. p.lerp_(z, 1 − β); each only when the "
                    "mode changes (a second eval() does nothing)")
            raise
    return "train()/eval() switched mid-run, twice in a row too"


@exercise("11.6", "Schedule-Free SGD", reference=SGDScheduleFree, library=[SGDScheduleFree], hints=[
    ("Per group each step: k counts steps; γ = lr·min(1, (k + 1)/warmup_steps) (if warmup); "
     "lr_max = max(lr_max, γ); w = (k + 1)^r·lr_max^weight_lr_power; weight_sum += w; "
     "c = w/weight_sum. Per parameter: z starts as a copy of p (state['z'])."),
    ("With g = grad + λ·p (new tensor): p.lerp_(z, c); p.add_(g, alpha=γ·(β·(1 − c) − 1)); "
     "z.sub_(g, alpha=γ). train(): p.lerp_(z, 1 − β); eval(): p.lerp_(z, 1 − 1/β), each only "
     "when group['train_mode'] changes, and only for parameters that have a z."),
    ("In step(): raise if not self.param_groups[0]['train_mode']. Then for each group compute "
     "γ and c as in hint 1, loop over its parameters with a grad, update y (= p) and z as in "
     "hint 2, and finally group['k'] += 1."),
])
def check_schedulefree(candidate):
    ours, reference = _in_train_mode(candidate), _in_train_mode(SGDScheduleFree)
    mistakes = {text: _in_train_mode(wrong) for text, wrong in SF_MISTAKES.items()}
    verified = compare_optimizer(ours, reference, SF_CASES, steps=8, mistakes=mistakes)
    compare_optimizer(ours, reference, SF_LONG, steps=150, mistakes=mistakes)
    modes = _train_eval(candidate, "lr 0.1, momentum 0.8, warmup 2")
    contract = _contract(candidate, SGDScheduleFree, {"lr": 0.1, "momentum": 0.8, "warmup_steps": 2},
                         {"lr": 0.3, "momentum": 0.6, "weight_decay": 0.1, "warmup_steps": 4,
                          "r": 1.0, "weight_lr_power": 1.0},
                         "mid-run changes", prepare=lambda o: o.train(), keys=("z",))
    return f"{verified}; 150 steps; {modes}; {contract}; the state key 'z'"
