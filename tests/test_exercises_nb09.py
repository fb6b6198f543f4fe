"""Notebook 09 checkers: exact resumes pass however written, broken ones fail naming what was missed."""

import os
import random
import tempfile

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from helpers import checkpoint as ref
from helpers.checking import check
from helpers.exercises import nb09

REFERENCES = {"09.1": ref.save_checkpoint, "09.2": ref.resume, "09.3": ref.train_resumable,
              "09.4": ref.set_base_lrs}


def _cause(result):
    return dict(result.details).get("likely cause", "")


def _failed_with(exercise, candidate, *words):
    result = check(exercise, candidate)
    assert result.status == "failed", str(result)
    text = _cause(result)
    for word in words:
        assert word in text, str(result)
    return result


@pytest.mark.parametrize("exercise", sorted(REFERENCES))
def test_references_pass(exercise):
    assert check(exercise, REFERENCES[exercise]).passed


# --------------------------------------------------------------------------
# The reference run itself: exact when resumed right, and only then
# --------------------------------------------------------------------------


def _uninterrupted(steps, seed=0):
    torch.manual_seed(seed)
    random.seed(seed)
    model = ref.build_model()
    optimizer = ref.build_optimizer(model)
    return ref.run_steps(model, optimizer, ref.build_scheduler(optimizer), steps), model


def _resumed(n, resume, seed=0):
    torch.manual_seed(seed)
    random.seed(seed)
    model = ref.build_model()
    optimizer = ref.build_optimizer(model)
    scheduler = ref.build_scheduler(optimizer)
    losses, lrs = ref.run_steps(model, optimizer, scheduler, n)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "c.pt")
        ref.save_checkpoint(path, n, model, optimizer, scheduler)
        torch.manual_seed(99)
        random.seed(99)
        builders = ref.build_model, ref.build_optimizer, ref.build_scheduler
        model, optimizer, scheduler, step = resume(path, *builders)
    more_losses, more_lrs = ref.run_steps(model, optimizer, scheduler, 2 * n - step)
    return (losses + more_losses, lrs + more_lrs), model


@pytest.mark.parametrize("n", [2, 4, 8])
def test_resume_is_bit_exact(n):
    (expected, expected_model), (got, model) = _uninterrupted(2 * n), _resumed(n, ref.resume)
    assert got == expected
    assert all(torch.equal(a, b) for a, b in zip(expected_model.parameters(), model.parameters()))


def test_the_run_needs_every_piece_of_state():
    # the run really draws from both RNGs and really depends on Adam's state and the schedule
    (expected, _), (got, _) = _uninterrupted(8), _resumed(4, resume_without_python_rng)
    assert got[0][:4] == expected[0][:4] and got[0][4] != expected[0][4]
    assert _resumed(4, resume_scheduler_built_late)[0][1][4] != expected[1][4]


def test_the_warmup_cosine_factor_by_hand():
    factor = ref.warmup_cosine(4, 16)
    assert [factor(t) for t in (0, 3, 4, 10, 16, 20)] == pytest.approx([0.2, 0.8, 1.0, 0.5, 0.0, 0.0])


def test_train_resumable_is_exact_and_the_broken_loop_is_not():
    with tempfile.TemporaryDirectory() as directory:
        expected_model, expected = ref.train_resumable(os.path.join(directory, "a.pt"), 15)
        model, got = nb09._interrupted(ref.train_resumable, (7, 9), directory)
        assert got == expected
        assert all(torch.equal(a, b) for a, b in zip(expected_model.parameters(), model.parameters()))
    for wrong in nb09.LOOP_MISTAKES.values():
        with tempfile.TemporaryDirectory() as directory:
            assert nb09._interrupted(wrong, (7,), directory)[1] != expected


# --------------------------------------------------------------------------
# 09.1 — save_checkpoint
# --------------------------------------------------------------------------


def save_with_copies(path, step, model, optimizer, scheduler):
    rng = {"python": random.getstate(), "torch": torch.random.get_rng_state().clone()}
    state = {name: obj.state_dict() for name, obj in
             (("model", model), ("optimizer", optimizer), ("scheduler", scheduler))}
    with open(path, "wb") as f:
        torch.save(dict(state, step=int(step), rng=rng), f)


def save_model_only(path, step, model, optimizer, scheduler):
    torch.save({"step": step, "model": model.state_dict()}, path)


def save_objects(path, step, model, optimizer, scheduler):
    torch.save({"step": step, "model": model, "optimizer": optimizer, "scheduler": scheduler,
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()}}, path)


def save_model_object(path, step, model, optimizer, scheduler):
    torch.save({"step": step, "model": model, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()}}, path)


def save_without_rng(path, step, model, optimizer, scheduler):
    torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, path)


def save_the_seed(path, step, model, optimizer, scheduler):
    torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {"torch": torch.initial_seed(), "python": random.getstate()}}, path)


def save_without_python_rng(path, step, model, optimizer, scheduler):
    torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": {"torch": torch.get_rng_state()}}, path)


def save_next_step(path, step, model, optimizer, scheduler):
    ref.save_checkpoint(path, step + 1, model, optimizer, scheduler)


def save_and_reseed(path, step, model, optimizer, scheduler):
    torch.manual_seed(0)
    ref.save_checkpoint(path, step, model, optimizer, scheduler)


def save_in_eval_mode(path, step, model, optimizer, scheduler):
    model.eval()  # "saving is not training"
    ref.save_checkpoint(path, step, model, optimizer, scheduler)


def save_after_a_scheduler_step(path, step, model, optimizer, scheduler):
    scheduler.step()
    ref.save_checkpoint(path, step, model, optimizer, scheduler)


def save_with_the_library(path, step, model, optimizer, scheduler):
    ref.save(path, model=model, optimizer=optimizer, scheduler=scheduler, step=step)


@pytest.mark.refuses_library
def test_the_library_save_is_not_an_answer():
    result = check("09.1", save_with_the_library)
    assert result.status == "failed" and "write it yourself" in str(result), str(result)


def test_a_differently_written_save_passes():
    assert check("09.1", save_with_copies).passed


@pytest.mark.parametrize(("candidate", "words"), [
    (save_model_only, ["the optimizer's state is missing", "the scheduler's state is missing",
                       "the RNG states are missing"]),
    (save_objects, ["could not pickle", "state_dict()"]),
    (save_model_object, ["you saved the Sequential itself in \"model\"", "weights_only=True"]),
    (save_without_rng, ["the RNG states are missing"]),
    (save_the_seed, ["a seed is not the generator's state", "torch.get_rng_state()"]),
    (save_without_python_rng, ["Python's RNG state is missing", "random.getstate()"]),
    (save_next_step, ["save the `step` you were given"]),
    (save_and_reseed, ["saving changed the run's random state"]),
    (save_in_eval_mode, ["switched the model to eval mode"]),
    (save_after_a_scheduler_step, ["must not step the scheduler"]),
])
def test_wrong_saves_fail_naming_what_is_missed(candidate, words):
    _failed_with("09.1", candidate, *words)


def test_a_save_that_writes_nothing_says_so():
    _failed_with("09.1", lambda *args: None, "nothing was written")


# --------------------------------------------------------------------------
# 09.2 — resume
# --------------------------------------------------------------------------


def _load_and_build(path, build_model, build_optimizer, build_scheduler):
    checkpoint = torch.load(path, weights_only=True)
    model = build_model()
    optimizer = build_optimizer(model)
    return checkpoint, model, optimizer, build_scheduler(optimizer)


def _restore_rng(checkpoint):
    torch.set_rng_state(checkpoint["rng"]["torch"])
    random.setstate(checkpoint["rng"]["python"])


def resume_scheduler_loaded_first(path, *builders):
    # C: everything built first, the scheduler's state loaded before the optimizer's: harmless
    checkpoint, model, optimizer, scheduler = _load_and_build(path, *builders)
    scheduler.load_state_dict(checkpoint["scheduler"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    model.load_state_dict(checkpoint["model"])
    _restore_rng(checkpoint)
    return model, optimizer, scheduler, checkpoint["step"]


def resume_with_last_epoch(path, build_model, build_optimizer, build_scheduler):
    # torch's older way: the optimizer's state first, then a closed-form scheduler from the step count
    checkpoint = torch.load(path, weights_only=True)
    model = build_model()
    model.load_state_dict(checkpoint["model"])
    optimizer = build_optimizer(model)
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler = LambdaLR(optimizer, ref.warmup_cosine(), last_epoch=checkpoint["step"] - 1)
    _restore_rng(checkpoint)
    return model, optimizer, scheduler, checkpoint["step"]


def resume_model_only(path, *builders):
    checkpoint, model, optimizer, scheduler = _load_and_build(path, *builders)
    model.load_state_dict(checkpoint["model"])
    _restore_rng(checkpoint)
    return model, optimizer, scheduler, checkpoint["step"]


def resume_optimizer_only(path, *builders):
    checkpoint, model, optimizer, scheduler = _load_and_build(path, *builders)
    optimizer.load_state_dict(checkpoint["optimizer"])
    _restore_rng(checkpoint)
    return model, optimizer, scheduler, checkpoint["step"]


def resume_without_scheduler(path, *builders):
    checkpoint, model, optimizer, scheduler = _load_and_build(path, *builders)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    _restore_rng(checkpoint)
    return model, optimizer, scheduler, checkpoint["step"]


def resume_scheduler_built_late(path, build_model, build_optimizer, build_scheduler):
    # B: the optimizer's state loaded, then the scheduler built (writing the lr of step 1) and loaded
    checkpoint = torch.load(path, weights_only=True)
    model = build_model()
    model.load_state_dict(checkpoint["model"])
    optimizer = build_optimizer(model)
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler = build_scheduler(optimizer)
    scheduler.load_state_dict(checkpoint["scheduler"])
    _restore_rng(checkpoint)
    return model, optimizer, scheduler, checkpoint["step"]


def resume_without_rng(path, *builders):
    checkpoint, model, optimizer, scheduler = _load_and_build(path, *builders)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    return model, optimizer, scheduler, checkpoint["step"]


def resume_without_python_rng(path, *builders):
    checkpoint, model, optimizer, scheduler = _load_and_build(path, *builders)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    return model, optimizer, scheduler, checkpoint["step"]


def resume_rng_before_building(path, build_model, build_optimizer, build_scheduler):
    checkpoint = torch.load(path, weights_only=True)
    _restore_rng(checkpoint)
    model = build_model()
    optimizer = build_optimizer(model)
    scheduler = build_scheduler(optimizer)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    return model, optimizer, scheduler, checkpoint["step"]


def resume_next_step(path, *builders):
    model, optimizer, scheduler, step = ref.resume(path, *builders)
    return model, optimizer, scheduler, step + 1


def resume_fresh_last_epoch(path, build_model, build_optimizer, build_scheduler):
    # a scheduler built with last_epoch on an optimizer without the checkpoint's state
    checkpoint = torch.load(path, weights_only=True)
    model = build_model()
    optimizer = build_optimizer(model)
    scheduler = LambdaLR(optimizer, ref.warmup_cosine(), last_epoch=checkpoint["step"] - 1)
    return model, optimizer, scheduler, checkpoint["step"]


def resume_last_epoch_off_by_one(path, build_model, build_optimizer, build_scheduler):
    # last_epoch=step: building steps the scheduler once more, to step + 1
    checkpoint = torch.load(path, weights_only=True)
    model = build_model()
    model.load_state_dict(checkpoint["model"])
    optimizer = build_optimizer(model)
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler = LambdaLR(optimizer, ref.warmup_cosine(), last_epoch=checkpoint["step"])
    _restore_rng(checkpoint)
    return model, optimizer, scheduler, checkpoint["step"]


def resume_scheduler_on_a_first_optimizer(path, build_model, build_optimizer, build_scheduler):
    # the scheduler built and loaded first, on an optimizer that is then built again
    checkpoint = torch.load(path, weights_only=True)
    model = build_model()
    model.load_state_dict(checkpoint["model"])
    scheduler = build_scheduler(build_optimizer(model))
    scheduler.load_state_dict(checkpoint["scheduler"])
    optimizer = build_optimizer(model)
    optimizer.load_state_dict(checkpoint["optimizer"])
    _restore_rng(checkpoint)
    return model, optimizer, scheduler, checkpoint["step"]


def resume_weights_only_false(path, *builders):
    checkpoint, model, optimizer, scheduler = _load_and_build(path, *builders)
    checkpoint = torch.load(path, weights_only=False)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    _restore_rng(checkpoint)
    return model, optimizer, scheduler, checkpoint["step"]


def resume_with_the_library(path, build_model, build_optimizer, build_scheduler):
    model = build_model()
    optimizer = build_optimizer(model)
    scheduler = build_scheduler(optimizer)
    step, _ = ref.load(path, model=model, optimizer=optimizer, scheduler=scheduler)
    return model, optimizer, scheduler, step


@pytest.mark.refuses_library
def test_the_library_load_is_not_an_answer():
    result = check("09.2", resume_with_the_library)
    assert result.status == "failed" and "write it yourself" in str(result), str(result)


@pytest.mark.parametrize("candidate", [resume_scheduler_loaded_first, resume_with_last_epoch])
def test_other_exact_resumes_pass(candidate):
    assert check("09.2", candidate).passed


@pytest.mark.parametrize(("candidate", "words"), [
    (resume_model_only, ["the optimizer's state is not loaded", "fresh Adam step",
                         "the scheduler's state is not loaded", "restarts the warmup"]),
    (resume_optimizer_only, ["the model's weights are not the checkpoint's",
                             "the scheduler's state is not loaded"]),
    (resume_without_scheduler, ["the scheduler's state is not loaded", "restarts the warmup"]),
    (resume_scheduler_built_late, ["the scheduler was built after optimizer.load_state_dict",
                                   "lr of step 1", "Build model, optimizer and scheduler first"]),
    (resume_without_rng, ["torch's RNG state is not restored", "Python's RNG state is not restored"]),
    (resume_without_python_rng, ["Python's RNG state is not restored"]),
    (resume_rng_before_building, ["restored before the model was built", "restore the RNG states last"]),
    (resume_next_step, ["resume returned step 4", "return checkpoint[\"step\"]"]),
    (resume_fresh_last_epoch, ["KeyError 'initial_lr'"]),
    (resume_last_epoch_off_by_one, ["last_epoch is 4, expected 3", "steps once more while it is built"]),
    (resume_weights_only_false, ["weights_only=False unpickles"]),
    (resume_scheduler_on_a_first_optimizer, ["the scheduler drives another optimizer",
                                             "build_scheduler(optimizer) on the optimizer you return"]),
])
def test_wrong_resumes_fail_naming_what_is_missed(candidate, words):
    _failed_with("09.2", candidate, *words)


def test_a_resume_missing_only_the_model_names_only_the_model():
    def resume_all_but_model(path, *builders):
        checkpoint, model, optimizer, scheduler = _load_and_build(path, *builders)
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        _restore_rng(checkpoint)
        return model, optimizer, scheduler, checkpoint["step"]

    result = _failed_with("09.2", resume_all_but_model, "the model's weights are not the checkpoint's")
    assert "optimizer" not in _cause(result) and "scheduler" not in _cause(result)


def test_a_resume_failure_names_the_case_and_the_first_step():
    result = check("09.2", resume_without_scheduler)
    details = dict(result.details)
    assert details["case"] == "resume after 3 of 6 steps (inside the warmup)"
    assert details["step"] == "5"  # the second update after the resume: the restarted warmup's lr


# --------------------------------------------------------------------------
# 09.3 — the resumable loop
# --------------------------------------------------------------------------


def train_with_islice(path, total_steps, stop_after=None):
    """Right, written another way: the position as epoch and batch, itertools.islice to skip."""
    import itertools

    torch.manual_seed(0)
    model = ref.build_model()
    optimizer = ref.build_optimizer(model)
    scheduler = ref.build_scheduler(optimizer)
    generator = torch.Generator().manual_seed(0)
    loader = ref.make_loader(generator)
    step, start = 0, 0
    if os.path.exists(path):
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["epoch_rng"])
        step, start = state["step"], state["position"]
    losses = []
    while step < total_steps:
        epoch_rng = generator.get_state()
        position = start
        for x, y in itertools.islice(loader, start, None):
            losses.append(training_step(model, optimizer, scheduler, x, y))
            step, position = step + 1, position + 1
            if step == stop_after:
                torch.save({"step": step, "position": position, "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "torch_rng": torch.get_rng_state(), "epoch_rng": epoch_rng}, path)
                return model, losses
            if step == total_steps:
                break
        start = 0
    return model, losses


def training_step(model, optimizer, scheduler, x, y):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item()


def test_a_differently_written_loop_passes():
    assert check("09.3", train_with_islice).passed


def train_reseeded_per_epoch(path, total_steps, stop_after=None):
    """Right, the other design the notebook names: the generator re-seeded with the epoch number
    at every epoch's start, so the checkpoint needs no generator state, only the position."""
    torch.manual_seed(0)
    model = ref.build_model()
    optimizer = ref.build_optimizer(model)
    scheduler = ref.build_scheduler(optimizer)
    generator = torch.Generator()
    loader = ref.make_loader(generator)
    step = 0
    if os.path.exists(path):
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step = state["step"]
    losses = []
    while step < total_steps:
        epoch, done = divmod(step, len(loader))
        generator.manual_seed(epoch)
        for batch, (x, y) in enumerate(loader):
            if batch < done:
                continue
            losses.append(training_step(model, optimizer, scheduler, x, y))
            step += 1
            if step == stop_after:
                torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}, path)
                return model, losses
            if step == total_steps:
                break
    return model, losses


def test_reseeding_the_loader_per_epoch_passes():
    result = check("09.3", train_reseeded_per_epoch)
    assert result.passed, str(result)


def test_a_loop_that_changes_the_run_itself_fails_saying_so():
    def scaled_losses(path, total_steps, stop_after=None):  # resumes exactly, but another run
        model, losses = train_reseeded_per_epoch(path, total_steps, stop_after)
        return model, [loss * 1.5 for loss in losses]

    result = check("09.3", scaled_losses)
    assert result.status == "failed" and "the run itself changed" in _cause(result), str(result)
    assert dict(result.details)["step"] == "1"


def test_a_generator_restored_into_another_generator_is_named_not_restored():
    # it is saved, but set on a generator the loader does not use: the cause must not say "not saved"
    def restores_elsewhere(path, total_steps, stop_after=None):
        torch.manual_seed(0)
        model = ref.build_model()
        optimizer = ref.build_optimizer(model)
        scheduler = ref.build_scheduler(optimizer)
        generator = torch.Generator().manual_seed(0)
        loader = ref.make_loader(generator)
        step, done = 0, 0
        if os.path.exists(path):
            state = torch.load(path, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            torch.Generator().set_state(state["loader"])  # not the loader's generator
            step, done = state["step"], state["done"]
        losses = []
        while step < total_steps:
            epoch_start = generator.get_state()
            for batch, (x, y) in enumerate(loader):
                if batch < done:
                    continue
                losses.append(training_step(model, optimizer, scheduler, x, y))
                step += 1
                if step == stop_after:
                    torch.save({"step": step, "done": batch + 1, "model": model.state_dict(),
                                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                "rng": torch.get_rng_state(), "loader": epoch_start}, path)
                    return model, losses
                if step == total_steps:
                    break
            done = 0
        return model, losses

    result = _failed_with("09.3", restores_elsewhere, "is not restored", "the loader's own generator")
    assert "not saved" not in _cause(result)


@pytest.mark.parametrize(("mistake", "words"), [
    (0, ["both bugs are still there", "generator is not restored",
         "starts again from its first batch"]),
    (1, ["the DataLoader's generator is not restored"]),
    (2, ["starts again from its first batch", "skip the batches already done"]),
    (3, ["at the checkpoint, after this epoch's shuffle was drawn", "from the start of the epoch"]),
    (4, ["at the checkpoint, after this epoch's shuffle was drawn", "starts again from its first batch"]),
    (5, ["skips one batch too few", "batch + 1 done"]),
    (6, ["the epochs after the resumed one skip", "back to 0"]),
])
def test_broken_loops_fail_naming_the_bugs(mistake, words):
    _failed_with("09.3", list(nb09.LOOP_MISTAKES.values())[mistake], *words)


def test_a_loop_that_does_not_save_says_so():
    def never_saves(path, total_steps, stop_after=None):
        return ref.train_resumable(path + ".elsewhere", total_steps, stop_after)

    _failed_with("09.3", never_saves, "save the checkpoint to path")


def test_a_loop_that_forgets_the_position_of_a_second_resume_fails():
    # right for one interruption; the second checkpoint counts batches from the resume, not the epoch
    def train(path, total_steps, stop_after=None):
        model, losses = ref.train_resumable(path, total_steps, stop_after)
        if stop_after is not None and os.path.exists(path):
            state = torch.load(path, weights_only=True)
            state["extra"]["batches_done"] = min(state["extra"]["batches_done"], len(losses))
            torch.save(state, path)
        return model, losses

    result = check("09.3", train)
    assert result.status == "failed" and "twice in one epoch" in dict(result.details)["case"], str(result)
    assert "likely cause" not in dict(result.details)  # no replayed mistake reproduces every case


@pytest.mark.refuses_library
def test_a_loop_built_on_the_library_pair_is_not_an_answer():
    result = check("09.3", ref.train_resumable)
    assert result.status == "failed" and "write it yourself" in str(result), str(result)


# --------------------------------------------------------------------------
# 09.4 — set_base_lrs
# --------------------------------------------------------------------------


def set_base_lrs_by_ratio(optimizer, scheduler, base_lrs):
    ratios = [new / old for new, old in zip(base_lrs, scheduler.base_lrs)]
    scheduler.base_lrs = [old * r for old, r in zip(scheduler.base_lrs, ratios)]
    for i, group in enumerate(optimizer.param_groups):
        group.update(lr=group["lr"] * ratios[i], initial_lr=base_lrs[i])


def test_a_differently_written_set_base_lrs_passes():
    assert check("09.4", set_base_lrs_by_ratio).passed


@pytest.mark.parametrize(("mistake", "words"), [
    (nb09._only_group_lr, ["only group[\"lr\"]", "undoes it"]),
    (nb09._only_base_lrs, ["the lr of the current step is still the old one"]),
    (nb09._peak_lr, ["not the new base lr itself"]),
    (nb09._no_initial_lr, ["initial_lr\"] still holds the old base lr"]),
    (nb09._first_group_only, ["only the first param group changed"]),
])
def test_wrong_set_base_lrs_fail_naming_the_mistake(mistake, words):
    _failed_with("09.4", mistake, *words)


def test_a_set_base_lrs_that_empties_the_callers_list_fails():
    def consumes(optimizer, scheduler, base_lrs):
        ref.set_base_lrs(optimizer, scheduler, list(base_lrs))
        base_lrs.clear()

    _failed_with("09.4", consumes, "changed the caller's list")


def test_a_failure_says_which_step_the_lr_is_for():
    result = check("09.4", nb09._only_base_lrs)
    details = dict(result.details)
    assert details["step"] == "8" and "for step 8" in details["detail"], str(result)  # after step 7


def test_writing_group_lr_is_undone_by_the_next_step():
    # the claim the notebook demonstrates, and why _only_group_lr is a mistake
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = LambdaLR(optimizer, ref.warmup_cosine())
    for _ in range(6):
        optimizer.step()
        scheduler.step()
    optimizer.param_groups[0]["lr"] = 0.5
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * ref.warmup_cosine()(7))


def test_an_rng_state_saved_as_a_list_is_not_called_a_seed():
    def as_list(path, step, model, optimizer, scheduler):
        torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": {"torch": torch.get_rng_state().tolist(), "python": random.getstate()}}, path)

    result = _failed_with("09.1", as_list, "torch.get_rng_state() itself")
    assert "seed" not in _cause(result)
