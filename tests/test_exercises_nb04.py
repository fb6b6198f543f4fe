"""The checkers of notebook 04: correct optimizers pass, known wrong ones fail naming their cause."""

import time

import pytest
import torch

import helpers.optim
from helpers.checking import check
from helpers.exercises import nb04

IDS = ["04.1", "04.2", "04.3", "04.4", "04.5"]
BASES = {"04.1": nb04._Adagrad, "04.2": nb04._RMSprop, "04.3": nb04._Adam,
         "04.4": nb04._AdamW, "04.5": nb04._AdamW}

# --------------------------------------------------------------------------
# Correct, but written differently from the reference
# --------------------------------------------------------------------------


class ForeachAdagrad(torch.optim.Optimizer):
    """Adagrad vectorized per group with torch._foreach_*, state created in the constructor
    (as torch does), the step a tensor."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, *, maximize=False):
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value,
                                  "eps": eps, "maximize": maximize})
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"] = torch.tensor(0.0)
                self.state[p]["sum"] = torch.full_like(p, initial_accumulator_value)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            grads = torch._foreach_neg(grads) if group["maximize"] else list(grads)
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            for p in params:  # a parameter of a group added later: torch starts it the same way
                if not self.state[p]:
                    self.state[p]["step"] = torch.tensor(0.0)
                    self.state[p]["sum"] = torch.full_like(p, self.defaults["initial_accumulator_value"])
            sums = [self.state[p]["sum"] for p in params]
            torch._foreach_addcmul_(sums, grads, grads)
            roots = torch._foreach_add(torch._foreach_sqrt(sums), group["eps"])
            for p, g, root in zip(params, grads, roots):
                self.state[p]["step"] += 1
                t = self.state[p]["step"].item()
                p.addcdiv_(g, root, value=-group["lr"] / (1 + (t - 1) * group["lr_decay"]))
        return loss


class OutOfPlaceRMSprop(nb04._RMSprop):
    """RMSprop with new tensors for every average, and the variance written as E[g²] − E[g]²
    under a square root taken with torch.pow."""

    def update(self, p, grad, state, group):
        a = group["alpha"]
        g = (-grad if group["maximize"] else grad) + group["weight_decay"] * p
        state["step"] = state.get("step", 0) + 1
        state["square_avg"] = a * state.get("square_avg", torch.zeros_like(p)) + (1 - a) * g**2
        denominator = state["square_avg"]
        if group["centered"]:
            state["grad_avg"] = a * state.get("grad_avg", torch.zeros_like(p)) + (1 - a) * g
            denominator = denominator - state["grad_avg"] ** 2
        p.copy_(p - group["lr"] * g / (torch.pow(denominator, 0.5) + group["eps"]))


class PaperAdam(nb04._AdamW):
    """Kingma & Ba's Algorithm 1 (and Loshchilov & Hutter's AdamW as one expression),
    θ ← θ − lr·(m̂/(√v̂ + ε) + λθ), the step a tensor read with float(); amsgrad as in torch.
    With ``decoupled = False`` it is Adam with the L2 penalty."""

    decoupled = True

    def update(self, p, grad, state, group):
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
            state["max_exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = float(state["step"])
        lam = group["weight_decay"]
        g = -grad if group["maximize"] else grad
        if not self.decoupled:
            g = g + lam * p
        state["exp_avg"] = beta1 * state["exp_avg"] + (1 - beta1) * g
        state["exp_avg_sq"] = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
        v = state["exp_avg_sq"]
        if group.get("amsgrad"):
            state["max_exp_avg_sq"] = v = torch.maximum(state["max_exp_avg_sq"], v)
        m_hat, v_hat = state["exp_avg"] / (1 - beta1**t), v / (1 - beta2**t)
        decay = lam * p if self.decoupled else 0
        p.sub_(group["lr"] * (m_hat / (v_hat.sqrt() + group["eps"]) + decay))


class PaperAdamL2(nb04._Adam):
    decoupled = False
    update = PaperAdam.update


def _solution(exercise_id):
    """The notebook's solution: the checkers' own update without a mistake switched on."""
    update = {"04.1": nb04._adagrad, "04.2": nb04._rmsprop}.get(exercise_id, nb04._adam)
    switches = {"decoupled": True} if exercise_id in ("04.4", "04.5") else {}
    return nb04._wrong(BASES[exercise_id], update, **switches)


CORRECT = {
    "04.1": [helpers.optim.Adagrad, torch.optim.Adagrad, ForeachAdagrad],
    "04.2": [helpers.optim.RMSprop, torch.optim.RMSprop, OutOfPlaceRMSprop],
    "04.3": [helpers.optim.Adam, torch.optim.Adam, PaperAdamL2],
    "04.4": [helpers.optim.AdamW, torch.optim.AdamW, PaperAdam],
    "04.5": [helpers.optim.AdamW, torch.optim.AdamW, PaperAdam],
}
CORRECT_CASES = [(i, cls) for i in IDS for cls in [*CORRECT[i], _solution(i)]]


@pytest.mark.parametrize(("exercise_id", "optimizer"), CORRECT_CASES,
                         ids=[f"{i}-{c.__module__.split('.')[0]}.{c.__name__}" for i, c in CORRECT_CASES])
def test_correct_optimizers_pass(exercise_id, optimizer):
    result = check(exercise_id, optimizer)
    assert result.passed, str(result)


@pytest.mark.parametrize("exercise_id", IDS)
def test_each_check_is_fast(exercise_id):
    check(exercise_id, torch.optim.AdamW)  # warm up torch's first-step imports
    start = time.perf_counter()
    check(exercise_id, _solution(exercise_id))
    assert time.perf_counter() - start < 3.0  # about 0.3 s on an idle core; headroom for busy CI


# --------------------------------------------------------------------------
# Not attempted, raising
# --------------------------------------------------------------------------


@pytest.mark.parametrize("exercise_id", IDS)
def test_the_stub_is_not_attempted(exercise_id):
    class Stub(BASES[exercise_id]):
        def update(self, p, grad, state, group):
            raise NotImplementedError(f"Exercise {exercise_id}: replace this line with your code")

    result = check(exercise_id, Stub)
    assert result.status == "not attempted", str(result)


@pytest.mark.parametrize("exercise_id", IDS)
def test_a_raising_candidate_is_reported_not_raised(exercise_id):
    class Raising(BASES[exercise_id]):
        def update(self, p, grad, state, group):
            return state["exp_avg_sq "]  # a typo in a key

    result = check(exercise_id, Raising)
    assert result.status == "failed"
    details = dict(result.details)
    assert "KeyError" in details["your code raised"]
    assert "(step 1)" in details["case"]


# --------------------------------------------------------------------------
# Wrong versions: each fails, and the message names its cause
# --------------------------------------------------------------------------

KNOWN = [
    (exercise_id, cause, cls)
    for exercise_id, mistakes in [
        ("04.1", nb04.ADAGRAD_MISTAKES), ("04.2", nb04.RMSPROP_MISTAKES),
        ("04.3", nb04.ADAM_MISTAKES), ("04.4", nb04.ADAMW_MISTAKES),
        ("04.5", nb04.AMSGRAD_MISTAKES)]
    for cause, cls in mistakes.items()
]


@pytest.mark.parametrize(("exercise_id", "cause", "wrong"), KNOWN,
                         ids=[f"{i}-{cls.__name__}" for i, _, cls in KNOWN])
def test_known_wrong_versions_fail_with_their_cause(exercise_id, cause, wrong):
    result = check(exercise_id, wrong)
    assert result.status == "failed"
    assert cause in str(result), str(result)


def test_no_bias_correction_is_caught_on_step_1_with_its_factor():
    result = check("04.3", nb04.ADAM_MISTAKES[nb04.NO_BIAS_CORRECTION])
    details = dict(result.details)
    assert details["step"] == "1"
    assert "3.16×" in details["likely cause"]
    # the factor named in the message is the real one: torch's step 1 is lr·sign(g)
    expected, got = (torch.tensor(eval(details[k].removeprefix("tensor"))) for k in ("expected", "got"))
    start = nb04.ADAM_CASES[0].data(1, seed=0)[0][0]
    ratio = (got - start) / (expected - start)
    assert torch.allclose(ratio, torch.full_like(ratio, 0.1 / 0.001**0.5), rtol=1e-3)


class CounterFromZeroWithFloats(nb04._Adam):
    """The step counter read before it is incremented; 1 − β₁⁰ computed with Python floats."""

    def update(self, p, grad, state, group):
        beta1, beta2 = group["betas"]
        if not state:
            state["step"], state["exp_avg"], state["exp_avg_sq"] = 0, torch.zeros_like(p), torch.zeros_like(p)
        t = state["step"]
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).add_(grad * grad, alpha=1 - beta2)
        step_size = group["lr"] / (1 - beta1**t)
        p.addcdiv_(state["exp_avg"], state["exp_avg_sq"].sqrt() + group["eps"], value=-step_size)
        state["step"] = t + 1


def test_a_division_by_zero_on_step_1_names_the_step_counter():
    details = dict(check("04.3", CounterFromZeroWithFloats).details)
    assert "ZeroDivisionError" in details["detail"]
    assert details["likely cause"] == nb04.STEP_FROM_0


def test_a_division_by_zero_elsewhere_is_reported_as_raised():
    class Raising(nb04._Adam):
        def update(self, p, grad, state, group):
            return 1 / 0

    details = dict(check("04.3", Raising).details)
    assert "ZeroDivisionError" in details["your code raised"]


class StateUnderOtherNames(nb04._Adam):
    """Right numbers, with the state in a dict of its own."""

    def update(self, p, grad, state, group):
        nb04._adam(p, grad, state.setdefault("adam", {}), group)


def test_right_numbers_under_other_state_keys_are_named():
    result = check("04.3", StateUnderOtherNames)
    assert result.status == "failed"
    assert "keep the state under the reference's keys ['exp_avg', 'exp_avg_sq', 'step']" in str(result)


# --------------------------------------------------------------------------
# Loopholes closed: every hyperparameter read per group, and Adagrad's start value as torch's
# --------------------------------------------------------------------------


def _from_defaults(exercise_id, key):
    base = _solution(exercise_id)

    def update(self, p, grad, state, group):
        base.update(self, p, grad, state, {**group, key: self.defaults[key]})
    return type(f"{key}FromDefaults", (base,), {"update": update})


READ_FROM_DEFAULTS = [
    (i, key) for i, keys in [
        ("04.1", ["lr", "lr_decay", "weight_decay", "eps", "maximize"]),
        ("04.2", ["lr", "alpha", "eps", "weight_decay", "centered", "maximize"]),
        ("04.3", ["lr", "betas", "eps", "weight_decay", "maximize"]),
        ("04.4", ["lr", "betas", "eps", "weight_decay", "maximize"]),
        ("04.5", ["amsgrad"])]
    for key in keys
]


@pytest.mark.parametrize(("exercise_id", "key"), READ_FROM_DEFAULTS, ids=lambda v: str(v))
def test_a_hyperparameter_read_from_the_defaults_fails(exercise_id, key):
    result = check(exercise_id, _from_defaults(exercise_id, key))
    assert result.status == "failed", key


def test_adagrad_follows_torch_for_a_groups_initial_accumulator_value():
    """torch starts every sum at the constructor's value; the group's own is ignored."""
    wrong = nb04._wrong(nb04._Adagrad, nb04._adagrad, start_of_group=True)
    result = check("04.1", wrong)
    assert "torch starts every sum at the constructor's" in str(result), str(result)
    assert check("04.1", _solution("04.1")).passed


def test_a_long_run_catches_bias_correction_dropped_after_step_100():
    class LateDrop(nb04._Adam):
        def update(self, p, grad, state, group):
            late = bool(state) and float(state["step"]) >= 100
            nb04._adam(p, grad, state, group, defaults=self.defaults,
                       correct_m=not late, correct_v=not late)

    details = dict(check("04.3", LateDrop).details)
    assert details["case"].startswith("long run")
    assert details["step"] == "101"
