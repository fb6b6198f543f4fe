"""The checkers of notebook 11: references and correct alternatives pass; every listed mistake
fails naming its own cause; the library is refused; the contract classes of issue 13 fail."""

import math
import re
import time

import pytest
import torch

import helpers.optim
from helpers.checking import check
from helpers.exercises import nb11

REFERENCES = {"11.1": nb11._Lion, "11.2": nb11.newton_schulz, "11.3": nb11.muon_step,
              "11.4": nb11.rectification, "11.5": nb11.factored_second_moment,
              "11.6": nb11._SFSGD}
MISTAKES = {"11.1": nb11.LION_MISTAKES, "11.2": nb11.NS_MISTAKES, "11.3": nb11.MUON_MISTAKES,
            "11.4": nb11.RECT_MISTAKES, "11.5": nb11.FACTORED_MISTAKES, "11.6": nb11.SF_MISTAKES}


def assert_fails(result, cause=None):
    text = str(result)
    assert not result.passed, text
    if cause is not None:
        assert f"likely cause: {cause}" in text, text
    return text


@pytest.mark.parametrize("exercise_id", list(REFERENCES))
def test_the_reference_passes_quickly(exercise_id):
    check(exercise_id, REFERENCES[exercise_id])  # warm-up: first calls pay for lazy imports
    start = time.perf_counter()
    result = check(exercise_id, REFERENCES[exercise_id])
    assert result.passed, str(result)
    assert time.perf_counter() - start < 1.0 * 3  # < 1 s alone; the machine is shared


CASES = [(ex, text, wrong) for ex, mistakes in MISTAKES.items() for text, wrong in mistakes.items()]


@pytest.mark.parametrize(("exercise_id", "cause", "wrong"), CASES,
                         ids=[f"{ex}-{i}" for i, (ex, _, _) in enumerate(CASES)])
def test_each_mistake_fails_with_its_cause(exercise_id, cause, wrong):
    assert_fails(check(exercise_id, wrong), cause)


# ------------------------------------------------------------------ correct alternatives


class FullLion(torch.optim.Optimizer):
    """Lion as a whole optimizer, out of place, the decay written as θ − lr·λ·θ."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay,
                                  "maximize": maximize})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                direction = torch.sign(b1 * m + (1 - b1) * g)
                p.copy_(p - group["lr"] * group["weight_decay"] * p - group["lr"] * direction)
                m.copy_(b2 * m + (1 - b2) * g)
        return loss


def ns_polynomial_on_the_right(G, steps=5, coefficients=nb11.NS_COEFFICIENTS, eps=1e-7):
    """No transpose: X ← X·(a·I + b·XᵀX + c·(XᵀX)²), the same polynomial from the other side."""
    a, b, c = coefficients
    X = G / max(G.norm().item(), eps)
    for _ in range(steps):
        S = X.T @ X
        X = X @ (a * torch.eye(S.shape[0], dtype=G.dtype) + b * S + c * S @ S)
    return X


def muon_out_of_place(p, grad, buf, lr, momentum=0.95, nesterov=True, weight_decay=0.1):
    buf.copy_(momentum * buf + (1 - momentum) * grad)
    update = (1 - momentum) * grad + momentum * buf if nesterov else buf
    rows, cols = p.shape
    p.copy_(p * (1 - lr * weight_decay)
            - lr * math.sqrt(max(1.0, rows / cols)) * nb11.newton_schulz(update))


def rect_with_torch(t, beta2=0.999):
    """The same formula on 0-dim float64 tensors, returned with float()."""
    b = torch.tensor(beta2, dtype=torch.float64)
    rho_inf = 2 / (1 - b) - 1
    rho_t = rho_inf - 2 * t * b**t / (1 - b**t)
    if rho_t <= 5:
        return None
    return float(((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)).sqrt())


def factored_by_outer(row_var, col_var, grad, one_minus_beta2, eps1=1e-30):
    """Moving averages written out, means as sums / count, V as an outer product."""
    n, m = grad.shape
    g2 = grad * grad
    R = (1 - one_minus_beta2) * row_var + one_minus_beta2 * g2.sum(dim=1, keepdim=True) / m
    C = (1 - one_minus_beta2) * col_var + one_minus_beta2 * g2.sum(dim=0, keepdim=True) / n
    V = torch.outer(R[:, 0], C[0]) / max(R.sum().item() / n, eps1)
    return R, C, V


class PaperScheduleFree(nb11._SFSGD):
    """The paper's three lines with x kept in the state as well: y recomputed from z and x."""

    @torch.no_grad()
    def step(self, closure=None):
        if not self.param_groups[0]["train_mode"]:
            raise RuntimeError("train() first")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            k, beta = group["k"], group["momentum"]
            warmup = group["warmup_steps"]
            lr = group["lr"] * min(1.0, (k + 1) / warmup) if warmup else group["lr"]
            group["lr_max"] = max(group["lr_max"], lr)
            w = (k + 1) ** group["r"] * group["lr_max"] ** group["weight_lr_power"]
            group["weight_sum"] += w
            c = w / group["weight_sum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "z" not in state:
                    state["z"] = p.clone()
                z = state["z"]
                x = (p - (1 - beta) * z) / beta
                z -= lr * (p.grad + group["weight_decay"] * p)
                x = (1 - c) * x + c * z
                p.copy_((1 - beta) * z + beta * x)
            group["k"] = k + 1
        return loss


@pytest.mark.parametrize(("exercise_id", "candidate"), [
    ("11.1", FullLion), ("11.2", ns_polynomial_on_the_right), ("11.3", muon_out_of_place),
    ("11.4", rect_with_torch), ("11.5", factored_by_outer), ("11.6", PaperScheduleFree),
])
def test_correct_alternatives_pass(exercise_id, candidate):
    result = check(exercise_id, candidate)
    assert result.passed, str(result)


# ------------------------------------------------------------------ the contract (issue 13)


class LionFromDefaults(nb11._Lion):
    """Reads every hyperparameter from self.defaults instead of the group."""

    def update(self, p, grad, state, group):
        super().update(p, grad, state, {**self.defaults, "params": group["params"]})


class LionCachedLr(nb11._Lion):
    """Keeps each group's lr of the first step: a scheduler's changes are ignored."""

    def update(self, p, grad, state, group):
        group.setdefault("first_lr", group["lr"])
        super().update(p, grad, state, {**group, "lr": group["first_lr"]})


class LionStateInInit(nb11._Lion):
    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["exp_avg"] = torch.zeros_like(p)


class LionLateChange(nb11._Lion):
    """Right for 100 steps, then drops the weight decay."""

    def update(self, p, grad, state, group):
        counts = self.__dict__.setdefault("counts", {})
        counts[p] = counts.get(p, 0) + 1
        super().update(p, grad, state, group if counts[p] <= 100 else {**group, "weight_decay": 0})


class ScheduleFreeEvalForgetsZ(nb11._SFSGD):
    """eval() and train() do nothing: the parameters always hold y."""

    def train(self):
        for group in self.param_groups:
            group["train_mode"] = True

    def eval(self):
        for group in self.param_groups:
            group["train_mode"] = False


def test_a_class_reading_self_defaults_fails_on_the_group_that_differs():
    text = assert_fails(check("11.1", LionFromDefaults))
    assert "two groups, every setting differs" in text and "param group 1" in text


def test_an_lr_cached_at_init_fails_when_the_lr_changes():
    text = assert_fails(check("11.1", LionCachedLr))
    assert "mid-run changes" in text and re.search(r"step:\s+2\n", text)  # lr changed before step 2


def test_state_created_in_init_fails():
    assert_fails(check("11.1", LionStateInInit),
                 "your optimizer has state before the first step(): "
                 "create a parameter's state on its first update")


def test_a_change_after_100_steps_fails_the_long_case():
    text = assert_fails(check("11.1", LionLateChange))
    assert "150 steps" in text and re.search(r"step:\s+101\n", text)


def test_schedulefree_without_the_switch_fails_at_eval():
    text = assert_fails(check("11.6", ScheduleFreeEvalForgetsZ), "eval() sets p ← x")
    assert "'eval'" in text


def test_schedulefree_eval_and_train_swapped_fails_at_eval():
    wrong = nb11._switches(nb11._SFSGD, eval_swapped=True)
    assert_fails(check("11.6", wrong), "eval() sets p ← x")


# ------------------------------------------------------------------ the library is not an answer


@pytest.mark.refuses_library
@pytest.mark.parametrize(("exercise_id", "library"), [
    ("11.1", helpers.optim.Lion), ("11.6", helpers.optim.SGDScheduleFree),
    ("11.2", nb11.newton_schulz), ("11.3", nb11.muon_step), ("11.4", nb11.rectification),
    ("11.5", nb11.factored_second_moment),
])
def test_the_library_is_refused(exercise_id, library):
    assert "the exercise is to write it yourself" in assert_fails(check(exercise_id, library))


@pytest.mark.refuses_library
def test_subclassing_or_calling_the_library_is_refused():
    class Sub(helpers.optim.SGDScheduleFree):
        pass

    def delegating(G, steps=5, coefficients=nb11.NS_COEFFICIENTS, eps=1e-7):
        from helpers.optim.muon import newton_schulz

        return newton_schulz(G, coefficients, steps, eps, dtype=G.dtype)

    assert_fails(check("11.6", Sub))
    assert_fails(check("11.2", delegating))


def test_inputs_stay_untouched_in_the_factored_estimate():
    def in_place(row_var, col_var, grad, one_minus_beta2, eps1=1e-30):
        row_var.lerp_((grad * grad).mean(dim=-1, keepdim=True), one_minus_beta2)
        col_var.lerp_((grad * grad).mean(dim=-2, keepdim=True), one_minus_beta2)
        return row_var, col_var, row_var @ col_var / row_var.mean().clamp(min=eps1)

    assert "row_var" in assert_fails(check("11.5", in_place))


def test_unattempted_exercises_say_so():
    def stub(*args, **kwargs):
        raise NotImplementedError("Exercise 11.2 — replace this line with your code")

    assert check("11.2", stub).status == "not attempted"


def test_rectification_matches_torch_radam():
    """The reference's r_t is the factor torch.optim.RAdam applies: one step of both, with
    m̂ and l known, gives r_t = step / (lr·m̂·l)."""
    for t in (6, 10, 200):
        p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.RAdam([p], lr=1.0)
        for _ in range(t):
            before = p.detach().clone()
            p.grad = torch.ones(1, dtype=torch.float64)
            optimizer.step()
        beta1, beta2 = 0.9, 0.999
        m_hat = 1.0  # constant gradient 1: m̂ = 1, v = 1 − β₂ᵗ, l = √(1 − β₂ᵗ)/(√v + ε)
        v = 1 - beta2**t
        adaptive = math.sqrt(1 - beta2**t) / (math.sqrt(v) + 1e-8)
        assert abs((before - p.detach()).item() / (m_hat * adaptive) - nb11.rectification(t)) < 1e-9
        assert beta1 == optimizer.defaults["betas"][0]
