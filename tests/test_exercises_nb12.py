"""The checkers of notebook 12: references and correct alternatives pass (also on the hidden
cases); every listed mistake fails naming its own cause; plausible wrong answers fail with a
specific message (a loop over the parameters, torch's fused kernel, copies instead of views);
the library is refused."""

import time

import pytest
import torch
from torch.optim import sgd as torch_sgd

import helpers.optim
from helpers import bench
from helpers.checking import check
from helpers.exercises import nb12
from helpers.optim import flat

REFERENCES = {"12.1": nb12.step_traffic, "12.2": nb12.ForeachSGD, "12.3": nb12.ForeachAdam,
              "12.4": nb12.flatten_, "12.5": nb12.FlatAdam}
MISTAKES = {"12.1": nb12.TRAFFIC_MISTAKES, "12.2": nb12.SGD_MISTAKES, "12.3": nb12.ADAM_MISTAKES,
            "12.5": nb12.FLAT_MISTAKES}


def assert_fails(result, *fragments):
    text = str(result)
    assert not result.passed, text
    for fragment in fragments:
        assert fragment in text, text
    return text


@pytest.mark.parametrize("exercise_id", list(REFERENCES))
def test_the_reference_passes_quickly(exercise_id):
    check(exercise_id, REFERENCES[exercise_id])  # warm-up: first calls pay for lazy imports
    start = time.perf_counter()
    result = check(exercise_id, REFERENCES[exercise_id])
    assert result.passed, str(result)
    assert time.perf_counter() - start < 1.0 * 3  # < 1 s alone; the machine is shared


def test_correct_answers_pass_the_hidden_cases(monkeypatch):
    monkeypatch.setenv("STEPWISE_GRADING", "1")  # the grader: the library (and the reference) refused
    for exercise_id, candidate in [("12.1", traffic_by_tensors), ("12.2", nb12.ForeachSGD),
                                   ("12.3", nb12.ForeachAdam), ("12.4", flatten_by_views),
                                   ("12.5", nb12.FlatAdam)]:
        result = check(exercise_id, candidate)
        assert result.passed and "hidden cases" in str(result), str(result)


CASES = [(ex, text, wrong) for ex, mistakes in MISTAKES.items() for text, wrong in mistakes.items()]


@pytest.mark.parametrize(("exercise_id", "cause", "wrong"), CASES,
                         ids=[f"{ex}-{i}" for i, (ex, _, _) in enumerate(CASES)])
def test_each_mistake_fails_with_its_cause(exercise_id, cause, wrong):
    assert_fails(check(exercise_id, wrong), f"likely cause: {cause}")


# ------------------------------------------------------------------ correct alternatives


def traffic_by_tensors(optimizer):
    """Lists the tensors a fused step touches and adds up their bytes."""
    read, written = [], []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            if "momentum" in group:
                state = ["momentum_buffer"] if group["momentum"] > 0 else []
            else:
                state = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])
            exists = bool(optimizer.state.get(p))
            read += [p, p.grad] + ([p] * len(state) if exists else [])
            written += [p] * (1 + len(state))
    return tuple(sum(t.nbytes for t in ts) for ts in (read, written))


class ForeachSGDWithNewBuffersByCat(torch.optim.Optimizer):
    """Momentum as b ← μ·b + (1 − τ)·g written with _foreach_lerp-free calls, buffers made by
    _foreach_mul on the first step of the whole group."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize})

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = torch._foreach_mul([p.grad for p in params], -1.0 if group["maximize"] else 1.0)
            if group["weight_decay"]:
                torch._foreach_add_(grads, params, alpha=group["weight_decay"])
            if group["momentum"]:
                new = [self.state[p].setdefault("momentum_buffer", None) is None for p in params]
                for p, fresh in zip(params, new):
                    if fresh:
                        self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                bufs = [self.state[p]["momentum_buffer"] for p in params]
                keep = [0.0 if fresh else group["momentum"] for fresh in new]
                scale = [1.0 if fresh else 1 - group["dampening"] for fresh in new]
                torch._foreach_mul_(bufs, keep)
                torch._foreach_add_(bufs, torch._foreach_mul(grads, scale))
                if group["nesterov"]:
                    grads = torch._foreach_add(grads, bufs, alpha=group["momentum"])
                else:
                    grads = bufs
            torch._foreach_add_(params, grads, alpha=-group["lr"])
        return loss


class ForeachAdamOtherwiseGrouped(nb12.ForeachAdam):
    """√(v/(1 − β₂ᵗ)) in one root, the update as m/denom times the step size, then subtracted."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, (b1, b2), wd, eps = group["lr"], group["betas"], group["weight_decay"], group["eps"]
            for p in params:
                if not self.state[p]:
                    self.state[p].update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p),
                                         exp_avg_sq=torch.zeros_like(p))
                    if group["amsgrad"]:
                        self.state[p]["max_exp_avg_sq"] = torch.zeros_like(p)
            states = [self.state[p] for p in params]
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)
            g = [p.grad for p in params]
            g = torch._foreach_neg(g) if group["maximize"] else g
            if wd and group["decoupled_weight_decay"]:
                torch._foreach_mul_(params, 1 - lr * wd)
            elif wd:
                g = torch._foreach_add(g, params, alpha=wd)
            m, v = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
            torch._foreach_lerp_(m, g, 1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, g, g, 1 - b2)
            if group["amsgrad"]:
                vmax = [s["max_exp_avg_sq"] for s in states]
                torch._foreach_maximum_(vmax, v)
                v = vmax
            counts = [t.item() for t in steps]
            denom = torch._foreach_sqrt(torch._foreach_div(v, [1 - b2**t for t in counts]))  # √(v/(1 − β₂ᵗ))
            torch._foreach_add_(denom, eps)
            update = torch._foreach_div(m, denom)
            torch._foreach_mul_(update, [lr / (1 - b1**t) for t in counts])
            torch._foreach_sub_(params, update)
        return loss


def flatten_by_views(tensors):
    flat = torch.empty(sum(t.numel() for t in tensors), dtype=tensors[0].dtype)
    offset = 0
    for t in tensors:
        view = flat.narrow(0, offset, t.numel()).view_as(t)
        view.copy_(t.detach())
        t.data = view
        offset += t.numel()
    return flat


class FlatAdamOnTheLibrarysUpdate(nb12.FlatAdam):
    """The notebook's pack(), the update through one call of the multi-tensor Adam per group."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            if any(p.grad is None for p in group["params"]):
                continue
            b = self.pack(group)
            torch._foreach_copy_(b["grads"], [p.grad for p in group["params"]])
            for p, view in zip(group["params"], b["grads"]):
                p.grad = view
            helpers.optim.adam._multi_tensor_adam(
                [b["param"]], [b["grad"]], [b["exp_avg"]], [b["exp_avg_sq"]], [], [b["step"]], lr=group["lr"],
                betas=group["betas"], eps=group["eps"], weight_decay=group["weight_decay"], amsgrad=False,
                maximize=group["maximize"], decoupled_weight_decay=False)
        return loss


@pytest.mark.parametrize(("exercise_id", "candidate"), [
    ("12.1", traffic_by_tensors), ("12.2", ForeachSGDWithNewBuffersByCat),
    ("12.3", ForeachAdamOtherwiseGrouped),
    ("12.4", flatten_by_views), ("12.5", FlatAdamOnTheLibrarysUpdate),
])
def test_correct_alternatives_pass(exercise_id, candidate):
    result = check(exercise_id, candidate)
    assert result.passed, str(result)


# ------------------------------------------------------------------ plausible wrong answers


class AdamLoopingOverParameters(nb12.ForeachAdam):
    """Right numbers, but the update is a Python loop over the parameters."""

    step = helpers.optim.Adam.step


class AdamOnTorchsFusedKernel(nb12.ForeachAdam):
    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if not self.state[p]:
                    self.state[p].update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p),
                                         exp_avg_sq=torch.zeros_like(p))
                    if group["amsgrad"]:
                        self.state[p]["max_exp_avg_sq"] = torch.zeros_like(p)
            states = [self.state[p] for p in params]
            torch._foreach_add_([s["step"] for s in states], 1)
            fused = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
            fused(params, [p.grad for p in params], [s["exp_avg"] for s in states],
                  [s["exp_avg_sq"] for s in states],
                  [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
                  [s["step"] for s in states], amsgrad=group["amsgrad"], lr=group["lr"],
                  beta1=group["betas"][0], beta2=group["betas"][1], weight_decay=group["weight_decay"],
                  eps=group["eps"], maximize=group["maximize"])
        return loss


class SGDLoopingOverParameters(nb12.ForeachSGD):
    step = helpers.optim.SGD.step


class SGDAddingIntoTheGradient(nb12.ForeachSGD):
    """The weight decay added into the caller's .grad (right parameters, changed gradients)."""

    @torch.no_grad()
    def step(self, closure=None):
        decays = [group["weight_decay"] for group in self.param_groups]
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params and group["weight_decay"]:
                torch._foreach_add_([p.grad for p in params], params, alpha=group["weight_decay"])
            group["weight_decay"] = 0
        try:
            return super().step(closure)
        finally:
            for group, decay in zip(self.param_groups, decays):
                group["weight_decay"] = decay


def test_a_loop_over_the_parameters_fails_the_kernel_count():
    for exercise_id, wrong in (("12.3", AdamLoopingOverParameters), ("12.2", SGDLoopingOverParameters)):
        assert_fails(check(exercise_id, wrong), "a Python loop over the parameters does tensor math",
                     "with 24 parameters")


def test_torchs_fused_kernel_is_refused():
    assert_fails(check("12.3", AdamOnTorchsFusedKernel), "aten._fused_adam", "torch's fused Adam kernel")


def test_writing_into_the_gradient_fails():
    assert_fails(check("12.2", SGDAddingIntoTheGradient), ".grad changed",
                 "step() added the weight decay to p.grad in place")


def test_flatten_wrong_answers_fail_specifically():
    def copies(tensors):
        return torch.cat([t.detach().reshape(-1) for t in tensors])

    def replaces(tensors):
        flat = copies(tensors)
        offset = 0
        for i, t in enumerate(tensors):
            tensors[i] = flat[offset:offset + t.numel()].view_as(t)
            offset += t.numel()
        return flat

    def reversed_order(tensors):
        flat = copies(tensors[::-1])
        offset = 0
        for t in tensors[::-1]:
            t.data = flat[offset:offset + t.numel()].view_as(t)
            offset += t.numel()
        return flat

    def flattened(tensors):
        flat = copies(tensors)
        offset = 0
        for t in tensors:
            t.data = flat[offset:offset + t.numel()]
            offset += t.numel()
        return flat

    assert_fails(check("12.4", copies), "a tensor with its own memory", "copying into a buffer is half of it")
    assert_fails(check("12.4", replaces), "is a new tensor")
    assert_fails(check("12.4", reversed_order), "a view at another place")
    assert_fails(check("12.4", flattened), "each view keeps its tensor's shape")
    assert_fails(check("12.4", lambda tensors: None), "return the flat buffer")


def test_a_flat_adam_without_views_fails():
    assert_fails(check("12.5", nb12.ForeachAdam), "as consecutive views of one buffer")  # right numbers


def test_traffic_wrong_answers_fail():
    assert_fails(check("12.1", lambda optimizer: [0, 0]), "(bytes read, bytes written)")
    assert_fails(check("12.1", lambda optimizer: sum(bench.step_traffic(optimizer))), "a tuple")


@pytest.mark.refuses_library
def test_the_library_is_refused():
    class ForeachLib(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                     maximize=False):
            super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                      "weight_decay": weight_decay, "nesterov": nesterov,
                                      "maximize": maximize})

        @torch.no_grad()
        def step(self, closure=None):
            for g in self.param_groups:
                params = [p for p in g["params"] if p.grad is not None]
                buffers = [self.state[p].get("momentum_buffer") for p in params]
                torch_sgd._multi_tensor_sgd(
                    params, [p.grad for p in params], buffers, None, None, weight_decay=g["weight_decay"],
                    momentum=g["momentum"], lr=g["lr"], dampening=g["dampening"], nesterov=g["nesterov"],
                    maximize=g["maximize"], has_sparse_grad=False)
                for p, b in zip(params, buffers):
                    self.state[p]["momentum_buffer"] = b

    refused = "the exercise is to write it yourself"
    for exercise_id, library in [("12.1", bench.step_traffic), ("12.2", helpers.optim.SGD),
                                 ("12.2", torch.optim.SGD), ("12.3", torch.optim.Adam),
                                 ("12.3", helpers.optim.Adam), ("12.4", flat.flatten_),
                                 ("12.5", flat.FlatAdam), ("12.2", ForeachLib)]:
        assert_fails(check(exercise_id, library), refused)
