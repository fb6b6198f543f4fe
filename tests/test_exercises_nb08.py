"""Notebook 08 checkers: right answers pass however written, known wrong ones fail naming why."""

import time

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S

from helpers.checking import check
from helpers.exercises import nb08
from helpers.param_groups import NORMS, decay_groups, layerwise_lr_groups, unfreeze

IDS = ["08.1", "08.2", "08.3"]
REFERENCES = {"08.1": decay_groups, "08.2": layerwise_lr_groups, "08.3": unfreeze}


def _cause(result):
    return dict(result.details).get("likely cause", "")


def _failed_with(exercise, candidate, words):
    result = check(exercise, candidate)
    assert result.status == "failed", str(result)
    assert words in _cause(result), str(result)


# --------------------------------------------------------------------------
# The references, by hand and against torch
# --------------------------------------------------------------------------


@pytest.mark.parametrize("make", [make for _, make, _ in nb08.DECAY_CASES])
def test_decay_groups_agree_with_the_ndim_rule_on_ordinary_layers(make):
    # nanoGPT's rule (decay iff p.dim() >= 2) is an independent statement of the same split here
    model = make()
    decay, no_decay = decay_groups(model, 0.1)
    assert decay["params"] == [p for p in model.parameters() if p.dim() >= 2]
    assert no_decay["params"] == [p for p in model.parameters() if p.dim() < 2]
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)


def test_decay_groups_by_hand():
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1, bias=False))
    decay, no_decay = decay_groups(model, 0.05)
    assert decay["params"] == [model[0].weight, model[2].weight]
    assert no_decay["params"] == [model[0].bias, model[1].weight, model[1].bias]


def test_a_group_without_weight_decay_falls_back_to_adamws_default():
    # what the notebook demonstrates: AdamW's default weight_decay is 0.01, not 0
    p, q = nn.Parameter(torch.zeros(2, 2)), nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([{"params": [p], "weight_decay": 0.1}, {"params": [q]}], lr=1e-3)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.01]


def test_layerwise_lr_groups_by_hand():
    blocks = [nn.Linear(1, 1) for _ in range(3)]
    groups = layerwise_lr_groups(blocks, 0.01, 0.5)
    assert [g["lr"] for g in groups] == pytest.approx([0.0025, 0.005, 0.01], rel=1e-15)
    assert [g["params"] for g in groups] == [[b.weight, b.bias] for b in blocks]


def test_unfreeze_under_step_lr_by_hand():
    # StepLR(step_size=2, gamma=0.5) from lr 0.1: at step 3 the lrs are 0.05; a group of base lr 0.04
    # added then starts at 0.02, and at step 4 both halve.
    head, layer = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1), requires_grad=False)
    optimizer = torch.optim.SGD([head], lr=0.1)
    scheduler = S.StepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    unfreeze(optimizer, scheduler, [layer], 0.04)
    assert layer.requires_grad and optimizer.param_groups[1]["params"] == [layer]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.05, 0.02])
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.025, 0.01])
    assert scheduler.base_lrs == [0.1, 0.04]


def test_lambda_lr_rejects_a_group_it_does_not_know():
    # what the notebook shows: torch 2.13 zips strictly, so add_param_group alone breaks LambdaLR
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = S.LambdaLR(optimizer, lambda t: 0.9**t)
    optimizer.add_param_group({"params": [nn.Parameter(torch.zeros(1))], "lr": 0.01})
    optimizer.step()
    with pytest.raises(ValueError, match="zip"):
        scheduler.step()


# --------------------------------------------------------------------------
# Right answers, written differently
# --------------------------------------------------------------------------


def ndim_groups(model, weight_decay):
    """nanoGPT's way: by p.dim(), over a list of named_parameters()."""
    named = list(model.named_parameters())
    return [{"params": [p for _, p in named if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for _, p in named if p.dim() < 2], "weight_decay": 0.0}]


def named_pair_groups(model, weight_decay):
    """minGPT-style sets of names, turned back into (name, parameter) pairs in model order."""
    no_decay = {f"{mn}.{pn}".lstrip(".") for mn, m in model.named_modules()
                for pn, _ in m.named_parameters(recurse=False) if pn.endswith("bias") or isinstance(m, NORMS)}
    named = list(model.named_parameters())
    return [{"params": [(n, p) for n, p in named if n not in no_decay], "weight_decay": weight_decay,
             "name": "decay"},
            {"params": [(n, p) for n, p in named if n in no_decay], "weight_decay": 0.0, "name": "no decay"}]


def running_product_groups(blocks, lr, decay):
    """From the top block down, multiplying as it goes."""
    groups, current = [], lr
    for block in reversed(list(blocks)):
        groups.insert(0, {"params": [*block.parameters()], "lr": current})
        current *= decay
    return groups


def unfreeze_differently(optimizer, scheduler, params, lr):
    """Factor from the last group's lr and initial_lr; attributes rebuilt rather than appended."""
    group = {"params": [p.requires_grad_() for p in params]}
    factor = optimizer.param_groups[-1]["lr"] / optimizer.param_groups[-1]["initial_lr"]
    group.update(lr=factor * lr, initial_lr=lr)
    optimizer.add_param_group(group)
    scheduler.base_lrs = [*scheduler.base_lrs, lr]
    if isinstance(scheduler, (S.LambdaLR, S.MultiplicativeLR)):
        scheduler.lr_lambdas = [*scheduler.lr_lambdas, scheduler.lr_lambdas[-1]]


@pytest.mark.parametrize("exercise", IDS)
def test_references_pass(exercise):
    assert check(exercise, REFERENCES[exercise]).passed


@pytest.mark.parametrize(
    ("exercise", "candidate"),
    [("08.1", ndim_groups), ("08.1", named_pair_groups), ("08.2", running_product_groups),
     ("08.3", unfreeze_differently)],
)
def test_differently_written_answers_pass(exercise, candidate):
    result = check(exercise, candidate)
    assert result.passed, str(result)


# --------------------------------------------------------------------------
# 08.1 mistakes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cause", list(nb08.DECAY_MISTAKES))
def test_replayed_decay_mistakes_are_named(cause):
    result = check("08.1", nb08.DECAY_MISTAKES[cause])
    assert result.status == "failed"
    assert _cause(result) == cause


def _with(groups, **changes):
    """ndim_groups, then changes to group 1."""
    def candidate(model, weight_decay):
        decay, no_decay = groups(model, weight_decay)
        no_decay.update(changes)
        return [decay, {k: v for k, v in no_decay.items() if v is not None}]
    return candidate


def _tied_twice(model, weight_decay):
    return nb08._by_module(model, weight_decay, lambda m, n: n.endswith("bias") or isinstance(m, NORMS),
                           dedupe=False)


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (_with(ndim_groups, weight_decay=None), "falls back to the optimizer's default"),
        (lambda m, wd: [{"params": list(m.parameters()), "weight_decay": wd}, ndim_groups(m, wd)[1]],
         "a parameter in both groups"),
        (lambda m, wd: [{"params": [n for n, p in m.named_parameters()], "weight_decay": wd},
                        {"params": [], "weight_decay": 0.0}], "not their names"),
        (_tied_twice, "tied weights"),
        (lambda m, wd: [{"params": set(g["params"]), "weight_decay": g["weight_decay"]}
                        for g in ndim_groups(m, wd)], "use a list"),
        (lambda m, wd: [{"params": sorted(g["params"], key=lambda p: p.numel()),
                         "weight_decay": g["weight_decay"]} for g in ndim_groups(m, wd)],
         "keep the order of model.parameters()"),
        (lambda m, wd: ndim_groups(m, wd)[::-1], "swapped"),
        (_with(ndim_groups, lr=0.1), "your group sets 'lr' itself"),
        (lambda m, wd: [{"params": [p.detach().clone() for p in g["params"]],
                         "weight_decay": g["weight_decay"]} for g in ndim_groups(m, wd)], "not copies"),
        (lambda m, wd: None, "forget `return`"),
        (lambda m, wd: [{**g, "params": iter(g["params"])} for g in ndim_groups(m, wd)], "must be a list"),
        (lambda m, wd: [{"params": (p for p in m.parameters() if p.dim() >= 2), "weight_decay": wd},
                        {"params": (p for p in m.parameters() if p.dim() < 2), "weight_decay": 0.0}],
         "must be a list"),
    ],
    ids=["no weight_decay key", "in both groups", "names", "tied twice", "set", "order", "swapped",
         "own lr", "copies", "no return", "iterators", "generators"],
)
def test_decay_mistakes_are_named(candidate, words):
    _failed_with("08.1", candidate, words)


def test_a_wrong_split_is_not_blamed_on_a_correct_order():
    # one decayed weight moved to the no-decay group, both lists in model order: a split mistake
    def one_weight_undecayed(model, weight_decay):
        decay, no_decay = decay_groups(model, weight_decay)
        moved = decay["params"][-1]
        return [{**decay, "params": decay["params"][:-1]},
                {**no_decay, "params": [p for p in model.parameters() if p is moved or
                                        any(p is q for q in no_decay["params"])]}]

    result = check("08.1", one_weight_undecayed)
    assert result.status == "failed" and "order" not in str(result), str(result)
    assert "holds parameters that belong to the other one" in dict(result.details)["detail"]


def test_frozen_parameters_skipped_only_in_the_frozen_case_are_named():
    result = check("08.1", lambda m, wd: [{**g, "params": [p for p in g["params"] if p.requires_grad]}
                                          for g in ndim_groups(m, wd)])
    assert result.status == "failed" and "frozen parameters" in _cause(result), str(result)
    assert "conv net" in dict(result.details)["case"]


def test_decay_mismatch_names_the_misplaced_parameters():
    biases_only = next(c for c in nb08.DECAY_MISTAKES if c.startswith("you exclude only the biases"))
    text = str(check("08.1", nb08.DECAY_MISTAKES[biases_only]))
    assert "pre.weight (LayerNorm), norm.weight (LayerNorm): not decayed" in text


# --------------------------------------------------------------------------
# 08.2 mistakes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cause", list(nb08.LAYERWISE_MISTAKES))
def test_replayed_layerwise_mistakes_are_named(cause):
    result = check("08.2", nb08.LAYERWISE_MISTAKES[cause])
    assert result.status == "failed"
    assert _cause(result) == cause


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (lambda blocks, lr, decay: [{"params": [p for b in blocks for p in b.parameters()], "lr": lr}],
         "each block needs a group of its own"),
        (lambda blocks, lr, decay: [{"params": list(b.parameters())} for b in blocks], "its own 'lr' key"),
        (lambda blocks, lr, decay: [{"params": list(b.parameters()), "lr": torch.tensor(lr)} for b in blocks],
         "tensors"),
        (lambda blocks, lr, decay: [{**g, "params": g["params"][::-1]}
                                    for g in layerwise_lr_groups(blocks, lr, decay)],
         "list(blocks[i].parameters())"),
        (lambda blocks, lr, decay: [{**g, "params": blocks[i].parameters()}
                                    for i, g in enumerate(layerwise_lr_groups(blocks, lr, decay))],
         "must be a list"),
        (lambda blocks, lr, decay: [{**g, "params": [p for p in g["params"] if p.requires_grad]}
                                    for g in layerwise_lr_groups(blocks, lr, decay)],
         "frozen parameters (requires_grad=False) are missing"),
    ],
    ids=["one group", "no lr", "tensor lr", "params reversed", "generators", "frozen skipped"],
)
def test_layerwise_mistakes_are_named(candidate, words):
    _failed_with("08.2", candidate, words)


def test_unexplained_wrong_layerwise_answer_has_no_made_up_cause():
    def squared(blocks, lr, decay):
        n = len(blocks)
        return [{"params": list(b.parameters()), "lr": lr * decay ** (2 * (n - 1 - i))}
                for i, b in enumerate(blocks)]

    result = check("08.2", squared)
    assert result.status == "failed" and "likely cause" not in dict(result.details)


# --------------------------------------------------------------------------
# 08.3 mistakes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cause", list(nb08.UNFREEZE_MISTAKES))
def test_replayed_unfreeze_mistakes_are_named(cause):
    result = check("08.3", nb08.UNFREEZE_MISTAKES[cause])
    assert result.status == "failed"
    assert _cause(result) == cause


def _unfreeze_without(*skipped):
    """The reference with some of its moves left out."""
    def candidate(optimizer, scheduler, params, lr):
        params = params if "list" in skipped else list(params)
        if "requires_grad" not in skipped:
            for p in params:
                p.requires_grad_(True)
        factor = scheduler.get_last_lr()[0] / scheduler.base_lrs[0]
        group = {"params": params, "lr": lr * factor, "initial_lr": lr}
        if "initial_lr" in skipped:
            del group["initial_lr"]
        optimizer.add_param_group(group)
        if "base_lrs" not in skipped:
            scheduler.base_lrs.append(lr)
        if "lr_lambdas" not in skipped and hasattr(scheduler, "lr_lambdas"):
            scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])
        if "step" in skipped:  # not a skip: an extra scheduler step
            scheduler.step()
    return candidate


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (_unfreeze_without("base_lrs", "lr_lambdas", "initial_lr"), "scheduler.base_lrs.append(lr)"),
        (_unfreeze_without("base_lrs"), "scheduler.base_lrs.append(lr)"),
        (_unfreeze_without("lr_lambdas"), "one lambda per group"),
        (_unfreeze_without("requires_grad"), "requires_grad_(True)"),
        (_unfreeze_without("list"), "make a list first"),
        (_unfreeze_without("initial_lr"), "'initial_lr': lr"),
        (_unfreeze_without("step"), "must not step the scheduler"),
    ],
    ids=["only add_param_group", "no base_lrs", "no lr_lambdas", "still frozen", "generator used up",
         "no initial_lr", "steps the scheduler"],
)
def test_unfreeze_mistakes_are_named(candidate, words):
    _failed_with("08.3", candidate, words)


def test_a_generator_read_by_add_param_group_first_is_explained():
    def add_then_loop(optimizer, scheduler, params, lr):
        factor = scheduler.get_last_lr()[0] / scheduler.base_lrs[0]
        optimizer.add_param_group({"params": params, "lr": lr * factor, "initial_lr": lr})
        for p in params:  # finds nothing: add_param_group has read the generator
            p.requires_grad_(True)
        scheduler.base_lrs.append(lr)
        scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])

    _failed_with("08.3", add_then_loop, "if add_param_group read it first")


def test_unfreeze_mismatch_names_case_step_and_group():
    text = str(check("08.3", nb08.UNFREEZE_MISTAKES[next(iter(nb08.UNFREEZE_MISTAKES))]))
    assert "LambdaLR" in text and "step:         7" in text and "param group 1 for step 7" in text


def test_the_reference_run_is_what_the_unfreezing_run_must_match():
    # the checker's reference (all groups from the start, frozen until their step) really trains
    # each layer only after its step, and the lrs it records follow the schedule
    case_ = nb08.UNFREEZE_CASES[1]  # StepLR(3, 0.5) from 0.1; layer 1 at step 4 (0.05), layer 0 at 7 (0.02)
    rows, values, _, _ = nb08._reference_run(case_)
    assert rows[4] == pytest.approx([0.05, 0.025]) and rows[7] == pytest.approx([0.025, 0.0125, 0.005])
    layer0 = [v[0] for v in values]  # layers[0].weight after each step
    assert all(torch.equal(layer0[0], w) for w in layer0[:7]) and not torch.equal(layer0[6], layer0[7])


# --------------------------------------------------------------------------
# Shared: stubs, errors, speed
# --------------------------------------------------------------------------


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 08.K: replace this line with your code")


@pytest.mark.parametrize("exercise", IDS)
def test_stub_is_not_attempted(exercise):
    assert check(exercise, _stub).status == "not attempted"


@pytest.mark.parametrize("exercise", IDS)
def test_raising_candidate_is_reported(exercise):
    def broken(*args):
        raise KeyError("params")

    result = check(exercise, broken)
    assert result.status == "failed"
    assert dict(result.details)["your code raised"] == "KeyError: 'params'"


@pytest.mark.parametrize("exercise", IDS)
def test_each_check_is_fast(exercise):
    check(exercise, REFERENCES[exercise])
    start = time.perf_counter()
    assert check(exercise, REFERENCES[exercise]).passed
    assert time.perf_counter() - start < 1.0



def test_an_unfreeze_cause_must_also_reproduce_the_cases_passed_before():
    # right under LambdaLR (the first case), unscaled otherwise: the second case's lrs are the unscaled
    # mistake's, but that mistake fails the first case, so it is not named
    def right_only_for_lambda_lr(optimizer, scheduler, params, lr):
        if hasattr(scheduler, "lr_lambdas"):
            unfreeze(optimizer, scheduler, params, lr)
        else:
            nb08._unscaled(optimizer, scheduler, params, lr)

    result = check("08.3", right_only_for_lambda_lr)
    assert result.status == "failed" and "StepLR" in dict(result.details)["case"], str(result)
    assert "likely cause" not in dict(result.details)


def test_unfreezing_the_callers_model_fails():
    def unfreezes(model, weight_decay):
        model.requires_grad_(True)
        return decay_groups(model, weight_decay)

    _failed_with("08.1", unfreezes, "a frozen parameter stays frozen")


def test_a_module_as_params_is_explained():
    _failed_with("08.2", lambda blocks, lr, decay: [{"params": b, "lr": g["lr"]} for b, g in
                                                   zip(blocks, layerwise_lr_groups(blocks, lr, decay))],
                 "not the module itself")


def test_a_current_lr_appended_as_base_lr_is_named_so():
    def appends_the_current_lr(optimizer, scheduler, params, lr):
        params = list(params)
        for p in params:
            p.requires_grad_(True)
        factor = scheduler.get_last_lr()[0] / scheduler.base_lrs[0]
        optimizer.add_param_group({"params": params, "lr": lr * factor, "initial_lr": lr})
        scheduler.base_lrs.append(lr * factor)
        if hasattr(scheduler, "lr_lambdas"):
            scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])

    result = check("08.3", appends_the_current_lr)
    assert result.status == "failed" and "not its base lr" in _cause(result), str(result)
    assert "tell it the new group's" not in _cause(result)
