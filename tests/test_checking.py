"""The check system: verdicts, timeouts, strict mode, records, progress, use, hint, CLI."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from jupyter_client.kernelspec import KernelSpecManager

from helpers import checking
from helpers.check import main as cli
from helpers.checking import Mismatch, case, check, exercise, hint, progress, untimed, use
from helpers.checking_tools import compare_function

ROOT = Path(__file__).resolve().parent.parent


def double(x):
    """Reference of the test exercise 99.1: a new tensor 2·x."""
    return 2 * x


def _register(exercise_id, checker, reference, title="Test exercise"):
    exercise(exercise_id, title, reference=reference, hints=["first", "second", "third"])(checker)


@pytest.fixture
def ex99():
    """Exercise 99.1 (double a tensor, float32 and float64), removed after the test."""

    def check_double(candidate):
        return compare_function(
            candidate,
            double,
            {
                "float32 vector": (torch.tensor([1.0, -2.0, 3.0]),),
                "float64 matrix": (torch.arange(6, dtype=torch.float64).reshape(2, 3),),
            },
            mistakes={"you added x instead of doubling it": lambda x: x + 1},
        )

    check_double.calls = 0
    _register("99.1", check_double, double, title="Double a tensor")
    yield "99.1"
    del checking._REGISTRY["99.1"]


# --------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------


def test_reference_and_a_differently_written_answer_pass(ex99):
    assert check(ex99, double).passed
    result = check(ex99, lambda x: x.clone().mul(2.0))
    assert (result.status, result.passed) == ("passed", True)
    assert result.message == "2 cases: float32 vector; float64 matrix"
    assert str(result) == "✅ Exercise 99.1 (Double a tensor) passed: " + result.message


def test_stub_is_not_attempted(ex99):
    def stub(x):
        raise NotImplementedError("Exercise 99.1 — replace this line with your code")

    result = check(ex99, stub)
    assert (result.status, result.passed) == ("not attempted", False)
    assert result.message == (
        "Exercise 99.1 is not attempted yet — replace the `raise NotImplementedError` line. "
        "hint('99.1') if you are stuck."
    )


def test_candidate_exception_names_case_type_message_and_line(ex99):
    def broken(x):
        raise ValueError("bad input")

    result = check(ex99, broken)
    assert result.status == "failed"
    text = str(result)
    assert "case:             float32 vector" in text
    assert "your code raised: ValueError: bad input" in text
    line = broken.__code__.co_firstlineno + 1
    assert f"at:               test_checking.py, line {line}: raise ValueError" in text
    assert "Traceback" not in text


def test_known_error_messages_get_a_hint(ex99):
    result = check(ex99, lambda x: x * None)
    assert "TypeError" in str(result)
    assert dict(result.details)["hint"].startswith("a value is None here: .grad is None until")
    assert "unused in the loss" not in str(result)  # no parameter had a .grad None here


def test_a_none_candidate_gets_its_own_verdict(ex99):
    result = check(ex99, None)
    assert result.status == "failed"
    assert "you handed in None" in str(result)


def test_backward_on_a_logged_float_gets_a_hint(ex99):
    result = check(ex99, lambda x: x.sum().item().backward())
    assert "AttributeError" in str(result)
    assert "loss.item() is a plain float" in dict(result.details)["hint"]


@pytest.mark.parametrize(
    ("answer", "expected_text"),
    [
        (lambda x: x + 1, "likely cause: you added x instead of doubling it"),
        (lambda x: x * math.nan, "likely cause: your result contains NaN or inf"),
        (lambda x: None, "should be a tensor, not None (did you forget `return`?)"),
        (lambda x: (2 * x).tolist(), "should be a tensor, not a list"),
        (lambda x: (2 * x).reshape(-1, 1), "result has shape (3, 1), expected (3,)"),
        (lambda x: 2 * x.float(), "result has dtype torch.float32, expected torch.float64"),
        (lambda x: x.mul_(2), "modified its input `x` in place"),
    ],
    ids=["mistake", "nan", "none", "list", "shape", "dtype", "mutates"],
)
def test_wrong_answers_fail_with_a_specific_message(ex99, answer, expected_text):
    result = check(ex99, answer)
    assert result.status == "failed"
    assert expected_text in str(result)


def test_mismatch_message_layout():
    mismatch = Mismatch("lr=0.1", 0.95, 1.05, step=3, cause="you added", detail="off by 0.1")
    ex = checking.Exercise("99.9", "T", None, None, ("a", "b"))
    assert str(checking._mismatch_result(ex, mismatch)) == (
        "❌ Exercise 99.9 (T) failed\n"
        "   case:         lr=0.1\n"
        "   step:         3\n"
        "   detail:       off by 0.1\n"
        "   expected:     0.95\n"
        "   got:          1.05\n"
        "   likely cause: you added"
    )


def test_plain_text_is_deterministic_and_html_is_escaped(ex99):
    class Opaque:
        pass

    result = check(ex99, lambda x: Opaque())
    text = str(result)
    assert repr(result) == text
    assert not re.search(r"0x[0-9a-f]{4,}|\d+\.\d+ ?s\b|/tmp/|\\\\", text), text
    assert "<Opaque object>" in text
    page = result._repr_html_()
    assert "&lt;Opaque object&gt;" in page and "<Opaque" not in page
    assert "❌" in page and "<code" in page


def test_unknown_id_lists_close_ids():
    result = check("0.1", double)
    assert result.status == "failed"
    assert "there is no exercise '0.1'. Did you mean 00.1?" in result.message


def test_a_check_is_fast(ex99):
    check(ex99, double)  # warm-up: registry import
    start = time.perf_counter()
    check(ex99, lambda x: x + x)
    assert time.perf_counter() - start < 1.0


# --------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------


def spin(x):
    while True:
        pass


def test_timeout_from_env_on_main_thread(ex99, monkeypatch):
    monkeypatch.setenv("STEPWISE_CHECK_TIMEOUT", "0.3")
    handler = signal.getsignal(signal.SIGALRM)
    start = time.perf_counter()
    result = check(ex99, spin)
    assert time.perf_counter() - start < 2
    assert result.status == "failed"
    assert "timed out:" in str(result) and "no answer after 0.3 s. An infinite loop?" in str(result)
    assert "case:      float32 vector" in str(result)
    assert signal.getsignal(signal.SIGALRM) is handler
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_timeout_off_the_main_thread(ex99):
    results = []
    thread = threading.Thread(target=lambda: results.append(check(ex99, spin, timeout=0.3)))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert "no answer after 0.3 s" in str(results[0])


def test_untimed_setup_does_not_count():
    def slow_setup(candidate):
        with untimed():
            time.sleep(0.4)
        return candidate()

    _register("99.2", slow_setup, lambda: "ok")
    try:
        assert check("99.2", lambda: "done", timeout=0.2).passed
    finally:
        del checking._REGISTRY["99.2"]


def test_check_does_not_disturb_torch_state(ex99):
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)

    def reseeds(x):
        torch.manual_seed(123)
        torch.set_default_dtype(torch.float64)
        return 2 * x

    check(ex99, reseeds)
    assert torch.get_default_dtype() == torch.float32
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------
# Strict mode and records
# --------------------------------------------------------------------------


def test_strict_mode_raises_with_the_same_message(ex99, monkeypatch):
    def wrong(x):
        return x + 1

    message = str(check(ex99, wrong))
    with pytest.raises(AssertionError) as error:
        check(ex99, wrong, strict=True)
    assert str(error.value) == message
    monkeypatch.setenv("STEPWISE_GRADING", "1")
    with pytest.raises(AssertionError):
        check(ex99, wrong)
    with pytest.raises(AssertionError, match="not attempted"):
        check(ex99, lambda x: (_ for _ in ()).throw(NotImplementedError))
    assert check(ex99, lambda x: x * 2).passed  # passing never raises
    assert not check(ex99, wrong, strict=False).passed


def test_every_check_appends_one_json_record(ex99, stepwise_home):
    results = [check(ex99, double), check(ex99, lambda x: x), check("98.7", double)]
    lines = (stepwise_home / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    for line, result in zip(lines, results):
        record = json.loads(line)
        assert record["exercise"] == result.exercise
        assert record["status"] == result.status
        assert record["passed"] is result.passed
        assert record["message"] == str(result)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["timestamp"])


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------


def _row(table, exercise_id):
    return next(line for line in str(table).splitlines() if line.startswith(exercise_id))


def test_progress_lists_every_exercise_with_its_latest_status(ex99, stepwise_home):
    assert _row(progress(), "00.1").endswith("not attempted")
    check(ex99, lambda x: x)
    assert _row(progress(), "99.1").endswith("failing")
    check(ex99, double)
    table = progress()
    assert _row(table, "99.1").split() == ["99.1", "Double", "a", "tensor", "passed"]
    saved = json.loads((stepwise_home / "progress.json").read_text())
    assert saved["99.1"]["status"] == "passed"
    assert "✅ passed" in table._repr_html_()
    ids = [line.split()[0] for line in str(table).splitlines()[1:-1]]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("."))))


def test_progress_keeps_the_best_verdict_and_shows_the_last_attempt(ex99, stepwise_home):
    def stub(x):
        raise NotImplementedError

    check(ex99, stub)
    assert _row(progress(), "99.1").endswith("not attempted")
    check(ex99, lambda x: x)
    assert _row(progress(), "99.1").endswith("failing")
    check(ex99, double)
    check(ex99, lambda x: x)  # a later failed attempt
    assert _row(progress(), "99.1").endswith("passed · last attempt failing")
    check(ex99, stub)  # the notebook re-run with its stubs
    assert _row(progress(), "99.1").endswith("passed · last attempt not attempted")
    use(ex99, lambda x: x)  # use() of a broken candidate checks it quietly
    table = progress()
    assert _row(table, "99.1").endswith("passed · last attempt failing")
    assert str(table).splitlines()[-1].startswith("1/")
    assert "✅ passed · last attempt failing" in table._repr_html_()
    check(ex99, double)
    assert _row(progress(), "99.1").endswith("passed")
    records = (stepwise_home / "records.jsonl").read_text().splitlines()
    assert len(records) == 7  # every attempt is still recorded


def test_a_verdict_shows_in_jupyter_once_wherever_the_check_stands_in_its_cell(tmp_path):
    """In a real kernel: a check that is not the cell's last line is shown after the cell; one
    that is the cell's value, or is printed, is not shown again."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    setup = ("from helpers.checking import check\n"
             "def sgd_update(w, grad, lr):\n    return w - lr * grad")
    cells = [
        setup,
        "r = check('00.1', sgd_update)\nx = 1",  # not the last line
        "check('00.1', sgd_update)",  # the cell's value
        "print(check('00.1', sgd_update))",  # printed
        "r = check('00.1', sgd_update)\nr",  # the cell's value, computed earlier
        "x = 2",  # nothing pending from before
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    env = {**os.environ, "STEPWISE_HOME": str(tmp_path)}
    # Under make test, a kernel forked from tools/kernel_server.py: the same kernel, imports done.
    kernel = "stepwise-forked" if "stepwise-forked" in KernelSpecManager().find_kernel_specs() else "python3"
    client = nbclient.NotebookClient(notebook, timeout=60, kernel_name=kernel,
                                     resources={"metadata": {"path": str(Path(__file__).parents[1])}})
    client.km = client.create_kernel_manager()
    client.start_new_kernel(env=env)
    client.start_new_kernel_client()
    try:
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
    finally:
        client._cleanup_kernel()
    shown = [sum("Exercise 00.1" in str(out) for out in cell.outputs) for cell in notebook.cells]
    assert shown == [0, 1, 1, 1, 1, 0]


def test_corrupt_progress_file_is_treated_as_empty(ex99, stepwise_home, capsys):
    stepwise_home.mkdir()
    (stepwise_home / "progress.json").write_text('{"99.1": {"status": "pass', encoding="utf-8")
    assert _row(progress(), "99.1").endswith("not attempted")
    assert "stepwise: ignoring unreadable progress file progress.json" in capsys.readouterr().err
    check(ex99, double)  # rewrites a valid file
    assert json.loads((stepwise_home / "progress.json").read_text())["99.1"]["status"] == "passed"


def test_progress_write_is_atomic(ex99, stepwise_home, monkeypatch, capsys):
    check(ex99, double)
    before = (stepwise_home / "progress.json").read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    result = check(ex99, lambda x: x)  # the write fails half-way: check still answers
    assert result.status == "failed"
    assert "could not save progress" in capsys.readouterr().err
    assert (stepwise_home / "progress.json").read_bytes() == before
    assert sorted(p.name for p in stepwise_home.iterdir()) == ["progress.json", "records.jsonl"]


def test_unwritable_home_never_raises(ex99, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("STEPWISE_HOME", str(blocker / "home"))
    assert check(ex99, double).passed
    assert "could not save progress" in capsys.readouterr().err
    assert _row(progress(), "99.1").endswith("not attempted")


# --------------------------------------------------------------------------
# use and hint
# --------------------------------------------------------------------------


def test_use_returns_a_passing_candidate_and_reuses_its_result(ex99, monkeypatch, capsys):
    def mine(x):
        return x * 2

    check(ex99, mine)
    calls = []
    monkeypatch.setattr(checking, "_run", lambda *args: calls.append(args))
    assert use(ex99, mine) is mine
    assert calls == [] and capsys.readouterr().out == ""


def test_use_falls_back_to_the_reference_with_a_note(ex99, capsys):
    assert use(ex99, lambda x: x) is double
    assert capsys.readouterr().out == "using the reference double: exercise 99.1 is not solved yet\n"

    def stub(x):
        raise NotImplementedError

    assert use(ex99, stub) is double
    assert "exercise 99.1 is not attempted yet" in capsys.readouterr().out


def test_hints_are_graduated_and_the_last_repeats(ex99):
    texts = [str(hint(ex99)) for _ in range(4)]
    assert texts == [
        "Hint 1/3 for 99.1 (Double a tensor): first",
        "Hint 2/3 for 99.1 (Double a tensor): second",
        "Hint 3/3 for 99.1 (Double a tensor): third",
        "Hint 3/3 for 99.1 (Double a tensor): third",
    ]
    assert str(hint(ex99, 2)).startswith("Hint 2/3")
    assert str(hint(ex99, 7)) == "Exercise 99.1 has hints 1 to 3."
    assert "Did you mean" in str(hint("99.11"))
    assert "<div" in hint(ex99)._repr_html_()


def test_registration_rejects_bad_ids_and_hints():
    with pytest.raises(ValueError, match="NN.K"):
        exercise("3.2", "t", reference=None, hints=["a", "b"])
    with pytest.raises(ValueError, match="2–3"):
        exercise("99.3", "t", reference=None, hints=["only one"])


def test_case_labels_exceptions_raised_inside_it():
    with pytest.raises(KeyError) as error, case("outer"), case("inner"):
        raise KeyError("x")
    assert error.value._stepwise_case == "inner"


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


def _write(tmp_path, body):
    path = tmp_path / "answer.py"
    path.write_text(body, encoding="utf-8")
    return path


def test_cli_exit_codes(tmp_path, capsys):
    answers = _write(
        tmp_path,
        "def good(w, grad, lr):\n    return w - lr * grad\n\n"
        "def bad(w, grad, lr):\n    return w + lr * grad\n\n"
        "def stub(w, grad, lr):\n    raise NotImplementedError\n",
    )
    assert cli(["00.1", f"{answers}:good"]) == 0
    assert capsys.readouterr().out.startswith("✅ Exercise 00.1 (One SGD step) passed")
    assert cli(["00.1", f"{answers}:bad"]) == 1
    assert "likely cause: you added lr·grad" in capsys.readouterr().out
    assert cli(["00.1", f"{answers}:stub"]) == 2
    assert cli(["00.1", f"{answers}:missing"]) == 2
    assert "defines no 'missing'" in capsys.readouterr().err
    assert cli(["00.1"]) == 2
    assert cli(["0.1", f"{answers}:good"]) == 2
    assert "Did you mean 00.1?" in capsys.readouterr().err
    assert cli(["--progress"]) == 0
    assert "00.1  One SGD step" in capsys.readouterr().out
    assert cli(["--hint", "00.1"]) == 0
    assert capsys.readouterr().out.startswith("Hint 1/3 for 00.1")


def test_cli_as_a_module(tmp_path, stepwise_home):
    answer = _write(tmp_path, "def bad(w, grad, lr):\n    return w - grad\n")
    done = subprocess.run(
        [sys.executable, "-m", "helpers.check", "00.1", f"{answer}:bad"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "STEPWISE_HOME": str(stepwise_home)},
    )
    assert done.returncode == 1
    assert "likely cause: you forgot the learning rate" in done.stdout
    assert "RuntimeWarning" not in done.stderr
    assert len((stepwise_home / "records.jsonl").read_text().splitlines()) == 1


def test_importing_helpers_does_not_load_the_check_system():
    code = (
        "import sys, helpers\n"
        "assert 'helpers.checking' not in sys.modules\n"
        "helpers.check\n"
        "assert 'helpers.checking' in sys.modules and 'helpers.check' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_check_stays_callable_after_the_cli_module_is_imported(ex99):
    import helpers.check  # noqa: F401  (rebinds the name helpers.check to the module)
    from helpers import check as imported_later

    assert imported_later(ex99, lambda x: x * 2).passed


# --------------------------------------------------------------------------
# The library is not an answer
# --------------------------------------------------------------------------

refuses_library = pytest.mark.refuses_library


def triple(x):
    """Reference of the test exercise 99.7, which also forbids torch.mul."""
    return 3 * x


@pytest.fixture
def ex97():
    def check_triple(candidate):
        return compare_function(candidate, triple, {"vector": (torch.tensor([1.0, -2.0]),)})

    exercise("99.7", "Triple", reference=triple, library=[torch.optim.SGD],
             hints=["first", "second"])(check_triple)
    yield "99.7"
    del checking._REGISTRY["99.7"]


@refuses_library
def test_the_reference_itself_is_refused_with_its_own_verdict(ex97):
    result = check(ex97, triple)
    assert result.status == "failed"
    assert "this is the reference triple (test_checking.triple) — the exercise is to write it" in str(result)


@refuses_library
def test_torchs_class_and_a_subclass_of_it_are_refused():
    result = check("03.1", torch.optim.SGD)
    assert "this is torch's own SGD (torch.optim.SGD) — the exercise is to write it yourself" in str(result)

    class Renamed(torch.optim.SGD):
        pass

    assert "your class subclasses torch's own SGD (torch.optim.SGD)" in str(check("03.1", Renamed))


@refuses_library
def test_a_candidate_that_only_delegates_is_refused_after_passing_every_case():
    class Delegating(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3):
            super().__init__(params, {"lr": lr})

        def step(self, closure=None):  # plain SGD keeps no state: a new one per step will do
            groups = [{"params": g["params"], "lr": g["lr"]} for g in self.param_groups]
            return torch.optim.SGD(groups).step(closure)

    result = check("03.1", Delegating)
    assert result.status == "failed"
    assert "your code calls torch's own SGD (torch.optim.SGD) to do the work" in str(result)


@refuses_library
def test_a_delegating_function_is_refused_and_an_own_one_passes(ex97):
    assert not check(ex97, lambda x: triple(x)).passed
    assert check(ex97, lambda x: x + x + x).passed


@refuses_library
def test_a_call_through_a_decorator_is_still_delegation():
    """torch.nn.utils.clip_grad_norm_ is wrapped by torch's _no_grad: the frame that calls the watched
    code is the wrapper's, and the candidate's behind it."""
    def delegating(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite)

    result = check("10.3", delegating)
    assert "your code calls torch's own clip_grad_norm_" in str(result), str(result)


@refuses_library
def test_refused_answers_fail_in_grading_mode(ex97, monkeypatch):
    monkeypatch.setenv("STEPWISE_GRADING", "1")
    with pytest.raises(AssertionError, match="the exercise is to write it"):
        check(ex97, triple)
