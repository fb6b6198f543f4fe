"""python -m helpers.grade: every hostile submission gets the grade it deserves, and no other."""

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import checking

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "hostile", ROOT / "tests" / "hostile" / "submissions.py"
)
hostile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostile)

# Small bounds keep the file fast: a hanging check costs 10 s of wall time, not of CPU (an honest
# check needs 1–3 s of its 5 s on a loaded machine).
LIMITS = [
    "--check-seconds",
    "10",
    "--cell-seconds",
    "10",
    "--grace-seconds",
    "1",
    "--memory-mb",
    "2560",
]


def _write(folder, entries):
    for name, content, _ in entries:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            content if isinstance(content, str) else json.dumps(content), encoding="utf-8"
        )


def grade(folder, out, *extra, notebook=("--notebook", "03")):
    command = ["-m", "helpers.grade", str(folder), "--out", str(out), *notebook, "--jobs", "4"]
    done = subprocess.run(
        [sys.executable, *command, *LIMITS, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    with open(out, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f)), done


def _verdicts(rows, student):
    return {r["exercise"]: r for r in rows if r["student"] == student}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class")
    entries = hostile.collection()
    _write(tmp / "class", entries)
    before = {p: p.read_bytes() for p in (ROOT / "helpers").rglob("*.py")}
    rows, done = grade(tmp / "class", tmp / "grades.csv", "--feedback", str(tmp / "feedback"))
    assert {
        p: p.read_bytes() for p in (ROOT / "helpers").rglob("*.py")
    } == before  # nothing reached us
    return tmp, entries, rows, done


def _student(name):
    return "carol" if name.startswith("submitted/") else Path(name).stem


def test_every_submission_gets_the_grade_it_deserves(graded):
    _, entries, rows, _ = graded
    wrong = {}
    for name, _, deserved in entries:
        got = _verdicts(rows, _student(name))
        assert set(got) == set(deserved), name
        for exercise, passes in deserved.items():
            row = got[exercise]
            if (row["verdict"] == "passed") != passes or float(row["points"]) != float(passes):
                wrong[f"{name} {exercise}"] = row["message"][:300]
    assert not wrong, wrong


def test_the_verdicts_say_what_happened(graded):
    _, _, rows, _ = graded
    crash_a, crash_b, crash_c = (_verdicts(rows, name) for name in ("crash_a", "crash_b", "crash_c"))
    assert "ended the check's process" in crash_a["03.1"]["message"]
    assert "SIGSEGV" in crash_a["03.3"]["message"]
    assert "MemoryError" in crash_a["03.5"]["message"]
    assert "timed out" in crash_b["03.2"]["message"]  # killed: the alarm was blocked
    assert "timed out" in crash_c["03.4"]["message"]
    library = _verdicts(rows, "library")
    assert all("write it yourself" in library[e]["message"] for e in hostile.EXERCISES)
    assert "hidden case" in _verdicts(rows, "faker")["03.1"]["message"]
    assert "not a readable notebook" in _verdicts(rows, "malformed")["03.1"]["message"]
    assert "defines no PlainSGD" in _verdicts(rows, "empty")["03.1"]["message"]
    assert "notebook 04, not 03" in _verdicts(rows, "another_assignment")["03.1"]["message"]


def test_feedback_names_the_cells_that_were_skipped(graded):
    tmp, _, _, _ = graded
    text = (tmp / "feedback" / "cells.txt").read_text(encoding="utf-8")
    assert "03_your_own_optimizer: 5/5 points" in text
    assert "hung" in text and "ended the process (exit code 3)" in text
    assert sorted(p.name for p in (tmp / "feedback").iterdir()) == sorted(
        f"{_student(name)}.txt" for name, _, _ in hostile.collection()
    )


def test_neighbours_change_no_grade_and_each_notebook_is_graded_as_what_it_is(graded, tmp_path):
    """Without --notebook, side by side: the honest notebook of 03 gets the verdicts it got among
    the hostile ones, a scheduler notebook (07, solved) passes, a stub of 01 is not attempted;
    a re-run skips what the gradebook has."""
    _, _, hostile_rows, _ = graded
    folder = tmp_path / "mixed"
    _write(folder, [e for e in hostile.collection() if e[0] == "honest.ipynb"])
    (folder / "erin").mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / "07_your_own_scheduler.ipynb", folder / "erin")
    shutil.copy(ROOT / "notebooks" / "01_gradients_by_hand.ipynb", folder / "frank.ipynb")
    out = tmp_path / "grades.csv"
    rows, _ = grade(folder, out, notebook=())
    got = {(r["student"], r["exercise"]): r["verdict"] for r in rows if r["student"] != "honest"}
    assert got == {
        **{("erin", f"07.{k}"): "passed" for k in range(1, 5)},
        **{("frank", f"01.{k}"): "not attempted" for k in range(1, 4)},
    }
    keep = ("exercise", "points", "verdict")
    assert [{k: r[k] for k in keep} for r in rows if r["student"] == "honest"] == [
        {k: r[k] for k in keep} for r in hostile_rows if r["student"] == "honest"
    ]
    again, done = grade(folder, out, notebook=())
    assert again == rows and "graded 0 submission(s)" in done.stdout


def test_points_toml_sets_the_maximum(tmp_path):
    points = tmp_path / "points.toml"
    points.write_text('[points]\n"03.1" = 3\n', encoding="utf-8")
    _write(tmp_path / "one", [("a.ipynb", "not json", None)])
    rows, _ = grade(tmp_path / "one", tmp_path / "g.csv", "--points", str(points))
    assert {r["exercise"]: r["max"] for r in rows}["03.1"] == "3"
    assert {r["exercise"]: r["max"] for r in rows}["03.2"] == "1"


# --------------------------------------------------------------------------
# helpers.checking in grading mode, in this process
# --------------------------------------------------------------------------


def test_the_tuned_answer_passes_what_the_learner_sees(monkeypatch):
    """TUNED is right on every visible case: only the hidden pass can fail it."""
    namespace = {}
    exec("import torch\nfrom torch.optim import Optimizer", namespace)  # noqa: S102
    nb = hostile.plus(hostile.honest(), hostile.TUNED)
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and not source.startswith(("check(", "%")):
            exec(source, namespace)  # noqa: S102
    assert checking.check("03.1", namespace["PlainSGD"]).passed
    monkeypatch.setenv("STEPWISE_GRADING", "1")
    with pytest.raises(AssertionError, match="hidden case"):
        checking.check("03.1", namespace["PlainSGD"])


def test_records_carry_exercise_notebook_student_time_and_hints(stepwise_home, monkeypatch):
    monkeypatch.setenv("STEPWISE_STUDENT", "dana")
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/dana/03_your_own_optimizer.ipynb")
    checking.hint("00.1")
    checking.check("00.1", None)
    records = [
        json.loads(line) for line in (stepwise_home / "records.jsonl").read_text().splitlines()
    ]
    assert [r.get("event") for r in records] == ["hint", None]
    for r in records:
        assert r["exercise"] == "00.1" and r["student"] == "dana"
        assert r["notebook"] == "03_your_own_optimizer.ipynb" and r["hints used"] == 1
        assert r["timestamp"].endswith("+00:00")
    assert records[1]["status"] == "failed"


def test_grading_mode_folds_warnings_into_the_verdict(stepwise_home, monkeypatch, capfd):
    stepwise_home.write_text("a file where the folder should be")  # records cannot be written
    monkeypatch.setenv("STEPWISE_GRADING", "1")
    with pytest.raises(AssertionError) as failure:
        checking.check("00.1", None)
    assert "could not save progress" in str(failure.value)
    assert capfd.readouterr().err == ""


def test_grading_mode_stays_on_when_the_notebook_turns_it_off(monkeypatch):
    monkeypatch.setattr(checking, "_GRADING_AT_IMPORT", True)
    monkeypatch.setitem(os.environ, "STEPWISE_GRADING", "0")
    assert checking._grading()


def test_grading_mode_set_at_start_survives_the_environment_turned_off_before_import(tmp_path):
    code = ("import os; os.environ['STEPWISE_GRADING'] = '0'\n"
            "from helpers import checking; print(checking._grading())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "STEPWISE_GRADING": "1"}, timeout=60)
    assert done.stdout.strip() == "True", done.stderr
