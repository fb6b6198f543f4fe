"""L-BFGS: a quasi-Newton method that needs the loss closure and (optionally) a line search."""

from functools import partial

import torch
from torch.optim import Optimizer

from ._validate import nonnegative


class LBFGS(Optimizer):
    r"""Limited-memory BFGS, drop-in for ``torch.optim.LBFGS``.

    One ``step(closure)`` runs up to ``max_iter`` iterations on the flattened
    parameters x (gradient g), keeping the last ``history_size`` pairs::

        s = x_new − x_old          (a step taken; state "old_stps")
        y = g_new − g_old          (the gradient change it caused; state "old_dirs")

    Iteration k::

        d ← −g                                       first iteration ever
        d ← −H·g                                     otherwise: two-loop recursion
                                                     (``two_loop_direction``) with
                                                     H₀ = (yᵀs / yᵀy)·I from the newest pair
        t ← lr·min(1, 1/‖g‖₁)                         first iteration ever, else t ← lr
        t ← strong_wolfe(x, t, d)                    if line_search_fn == "strong_wolfe"
        x ← x + t·d
        keep the pair (s, y) = (t·d, g_new − g) only if yᵀs > 1e-10  (keeps H positive definite)

    It stops early when max|g| ≤ tolerance_grad, gᵀd > −tolerance_change,
    max|t·d| ≤ tolerance_change, |Δloss| < tolerance_change, or after ``max_eval``
    closure evaluations. Without a line search, the loss and gradient are not
    re-evaluated after the last iteration's move.

    Paper: D. C. Liu and J. Nocedal, "On the limited memory BFGS method for large
    scale optimization", Math. Programming 45, 1989, https://doi.org/10.1007/BF01589116 ;
    the two-loop recursion and line search follow Nocedal & Wright, "Numerical
    Optimization" (2006), Algorithms 7.4 and 3.5/3.6, as ported to torch from Torch7
    (itself inspired by minFunc).

    Args:
        params: iterable of parameters; one parameter group only (as in torch).
        lr (float): step length t before any line search (default: 1).
        max_iter (int): iterations per ``step`` (default: 20).
        max_eval (int | None): closure evaluations per ``step``
            (default: max_iter · 5 // 4).
        tolerance_grad (float): stop when max|g| ≤ this (default: 1e-7).
        tolerance_change (float): stop when the step, the loss change or the directional
            derivative is below this (default: 1e-9).
        history_size (int): number of (s, y) pairs kept (default: 100).
        line_search_fn (str | None): None (fixed step t) or "strong_wolfe".

    State (stored under the first parameter, like torch): ``func_evals``, ``n_iter``,
    ``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro`` (1/yᵀs per pair), ``H_diag``,
    ``prev_flat_grad``, ``prev_loss``: the same keys as torch, so state dicts load both
    ways. torch also stores ``al``, scratch space of the two-loop recursion that carries
    nothing from one step to the next; we keep it local. Unlike torch (which fails in
    ``step``), an unknown ``line_search_fn`` and a second parameter group added by
    ``add_param_group`` raise ValueError right away.
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        nonnegative(lr=lr)
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be None or 'strong_wolfe': {line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = {"lr": lr, "max_iter": max_iter, "max_eval": max_eval,
                    "tolerance_grad": tolerance_grad, "tolerance_change": tolerance_change,
                    "history_size": history_size, "line_search_fn": line_search_fn}
        super().__init__(params, defaults)
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, param_group):
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    def _flat_grad(self):
        """All gradients as one vector (zeros for a parameter without .grad)."""
        return torch.cat([p.grad.view(-1) if p.grad is not None else p.new_zeros(p.numel())
                          for p in self._params])

    def _move(self, t, d):
        """x ← x + t·d, with the flat vector d split back into the parameters."""
        offset = 0
        for p in self._params:
            p.add_(d[offset:offset + p.numel()].view_as(p), alpha=t)
            offset += p.numel()

    def _loss_and_grad_at(self, closure, x, t, d):
        """f(x + t·d) and its gradient, leaving the parameters at x."""
        self._move(t, d)
        loss = float(closure())
        flat_grad = self._flat_grad()
        for p, x_p in zip(self._params, x):
            p.copy_(x_p)
        return loss, flat_grad

    @torch.no_grad()
    def step(self, closure):
        """Run up to ``max_iter`` iterations; ``closure`` must zero the gradients,
        compute the loss, call backward and return the loss. Returns the first loss."""
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]

        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        opt_cond = flat_grad.abs().max() <= tolerance_grad
        if opt_cond:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        # the (s, y) pairs and rho = 1/yᵀs, under torch's state names
        s_hist, y_hist, rho = state.get("old_stps"), state.get("old_dirs"), state.get("ro")
        H_diag = state.get("H_diag")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # 1. search direction d
            if state["n_iter"] == 1:
                d = flat_grad.neg()
                s_hist, y_hist, rho = [], [], []
                H_diag = 1
            else:
                y = flat_grad.sub(prev_flat_grad)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > 1e-10:  # curvature condition: keep the pair only if yᵀs > 0
                    if len(s_hist) == group["history_size"]:
                        del s_hist[0], y_hist[0], rho[0]  # forget the oldest pair
                    s_hist.append(s)
                    y_hist.append(y)
                    rho.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                d = two_loop_direction(flat_grad, s_hist, y_hist, rho, H_diag)

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone()
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss

            # 2. step length t, then move
            t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)  # directional derivative gᵀd
            if gtd > -tolerance_change:
                break

            evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x = [p.clone() for p in self._params]
                loss_and_grad_at = partial(self._loss_and_grad_at, closure, x)
                loss, flat_grad, t, evals = strong_wolfe(
                    loss_and_grad_at, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
                self._move(t, d)
                opt_cond = flat_grad.abs().max() <= tolerance_grad
            else:
                self._move(t, d)
                if n_iter != max_iter:  # the last move is not evaluated
                    loss = float(closure())
                    flat_grad = self._flat_grad()
                    opt_cond = flat_grad.abs().max() <= tolerance_grad
                    evals = 1
            current_evals += evals
            state["func_evals"] += evals

            # 3. stop?
            if (n_iter == max_iter or current_evals >= max_eval or opt_cond
                    or d.mul(t).abs().max() <= tolerance_change
                    or abs(loss - prev_loss) < tolerance_change):
                break

        state.update(d=d, t=t, old_stps=s_hist, old_dirs=y_hist, ro=rho, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss


def two_loop_direction(grad, old_s, old_y, rho, H_diag):
    """d = −H·grad, H the L-BFGS inverse-Hessian estimate built from the pairs (s, y)
    (oldest first, rho = 1/yᵀs) on top of H₀ = H_diag·I. Nocedal & Wright, Alg. 7.4."""
    q = grad.neg()
    alphas = [None] * len(old_s)
    for i in reversed(range(len(old_s))):  # newest to oldest
        alphas[i] = old_s[i].dot(q) * rho[i]
        q.add_(old_y[i], alpha=-alphas[i])
    r = torch.mul(q, H_diag)
    for i in range(len(old_s)):  # oldest to newest
        beta = old_y[i].dot(r) * rho[i]
        r.add_(old_s[i], alpha=alphas[i] - beta)
    return r


def strong_wolfe(loss_and_grad_at, t, d, f, g, gtd, c1=1e-4, c2=0.9,
                 tolerance_change=1e-9, max_ls=25):
    """Find a step t along d that satisfies the strong Wolfe conditions::

        f(x + t·d) ≤ f + c1·t·gᵀd             (sufficient decrease, "Armijo")
        |∇f(x + t·d)ᵀd| ≤ c2·|gᵀd|            (curvature)

    ``loss_and_grad_at(t, d)`` evaluates f and ∇f at x + t·d. Phase 1 grows t
    until an interval [lo, hi] is known to contain such a point; phase 2 ("zoom")
    shrinks it by cubic interpolation. Nocedal & Wright, Algorithms 3.5 and 3.6.
    Returns (f, ∇f, t, number of evaluations) at the best point found.
    """
    d_norm = d.abs().max()
    g = g.clone()
    f_new, g_new = loss_and_grad_at(t, d)
    evals = 1
    gtd_new = g_new.dot(d)

    # Phase 1: bracket. Each list holds (t, f, g, gᵀd) of the interval's two ends.
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket = [t_prev, t]  # too far: the point lies between t_prev and t
            bracket_f, bracket_g = [f_prev, f_new], [g_prev, g_new.clone()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:  # both conditions hold at t
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:  # slope turned upward: a minimum lies between t_prev and t
            bracket = [t_prev, t]
            bracket_f, bracket_g = [f_prev, f_new], [g_prev, g_new.clone()]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        # still going down: extrapolate to a larger t (at most 10·t)
        t_next = cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new.clone(), gtd_new
        t = t_next
        f_new, g_new = loss_and_grad_at(t, d)
        evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

    if ls_iter == max_ls:  # out of evaluations
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # Phase 2: zoom. lo is the end with the lower loss.
    insuf_progress = False
    lo, hi = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = cubic_minimum(bracket[0], bracket_f[0], bracket_gtd[0],
                          bracket[1], bracket_f[1], bracket_gtd[1])

        # Too close to an end of the interval twice in a row (or outside it):
        # move to 10% of the interval's width from the nearest end.
        left, right = min(bracket), max(bracket)
        eps = 0.1 * (right - left)
        if min(right - t, t - left) < eps:
            if insuf_progress or t >= right or t <= left:
                t = right - eps if abs(t - right) < abs(t - left) else left + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        f_new, g_new = loss_and_grad_at(t, d)
        evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1

        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[lo]:
            # not a sufficient decrease: t becomes the new high end
            bracket[hi], bracket_f[hi] = t, f_new
            bracket_g[hi], bracket_gtd[hi] = g_new.clone(), gtd_new
            lo, hi = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True  # strong Wolfe conditions hold at t
            elif gtd_new * (bracket[hi] - bracket[lo]) >= 0:
                # the slope at t points away from hi: the old low end becomes high
                bracket[hi], bracket_f[hi] = bracket[lo], bracket_f[lo]
                bracket_g[hi], bracket_gtd[hi] = bracket_g[lo], bracket_gtd[lo]
            bracket[lo], bracket_f[lo] = t, f_new
            bracket_g[lo], bracket_gtd[lo] = g_new.clone(), gtd_new

    return bracket_f[lo], bracket_g[lo], bracket[lo], evals


def cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimizer of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2,
    clamped to ``bounds`` (default: between x1 and x2); their midpoint if it has none."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = d2_square.sqrt()
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, lo), hi)
    return (lo + hi) / 2.0
