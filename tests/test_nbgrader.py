"""Instructors can feed solutions/ to `nbgrader generate_assignment` unchanged."""

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("hostile", ROOT / "tests" / "hostile" / "submissions.py")
hostile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostile)


def test_nbgrader_generates_the_assignment_from_solutions(tmp_path):
    source = tmp_path / "source" / "stepwise"
    source.mkdir(parents=True)
    solutions = sorted((ROOT / "solutions").glob("*.ipynb"))
    for path in solutions:
        shutil.copy(path, source)
    (tmp_path / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "stepwise"\n')

    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", "stepwise", "--no-db", "--force"],
        cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "ERROR" not in result.stderr, result.stderr[-3000:]

    for path in solutions:
        ours = nbformat.read(path, 4)
        released = nbformat.read(tmp_path / "release" / "stepwise" / path.name, 4)
        regions = sum("BEGIN SOLUTION" in cell.source for cell in ours.cells)
        stubs = sum("raise NotImplementedError()" in cell.source for cell in released.cells)
        assert stubs == regions, path.name
        assert not any("BEGIN SOLUTION" in cell.source for cell in released.cells), path.name
        graded = [c for c in released.cells if c.metadata.get("nbgrader", {}).get("grade")]
        assert all(cell.source.startswith("check(") for cell in graded), path.name


def _nbgrader(*args, cwd):
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def _recommended_config(course):
    course.mkdir()
    text = (ROOT / "course" / "nbgrader_config.py").read_text().replace(
        "PROJECT = HERE.parent", f"PROJECT = Path({str(ROOT)!r})")
    (course / "nbgrader_config.py").write_text(text)
    return course / "nbgrader_config.py"


def test_the_recommended_config_starts_its_kernels_in_the_projects_python(tmp_path):
    """Under the config, nbgrader's process finds the python3 kernelspec's Python on PATH as the
    project's (a kernelspec may name a bare "python"), and that Python finds helpers from the
    course folder, whatever PATH and PYTHONPATH the instructor's shell had."""
    config = _recommended_config(tmp_path / "course")
    code = (
        "import runpy, shutil, subprocess, sys\n"
        "from traitlets.config import Config\n"
        "from jupyter_client.kernelspec import KernelSpecManager\n"
        "sys.argv = ['nbgrader', 'autograde']\n"
        f"runpy.run_path({str(config)!r}, init_globals={{'get_config': Config}})\n"
        "argv = KernelSpecManager().get_kernel_spec('python3').argv\n"
        "for python in (argv[0], 'python'):\n"
        "    found = shutil.which(python)\n"
        "    print(subprocess.run([found, '-c', 'import sys, importlib.util as u; '\n"
        "        'print(sys.prefix, u.find_spec(\"helpers\").origin)'], capture_output=True, text=True,\n"
        "        check=True).stdout.strip())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # no project Python on it but the config's
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "course", env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines == [f"{ROOT / '.venv'} {ROOT / 'helpers' / '__init__.py'}"] * 2, done.stdout


def test_the_recommended_config_grades_with_the_database(tmp_path):
    """course/nbgrader_config.py, end to end with the gradebook database: generate_assignment,
    autograde and export give 4/5 to a student whose first cell turns grading mode off and whose
    03.1 answer is right on the visible cases only (hostile.TUNED). Each point says something:
    the four honest answers pass with the hidden cases; 03.1 scores 0 only if grading mode stayed
    on (else its check, passing the visible cases, would not raise) and the hidden cases ran."""
    course = tmp_path / "course"
    _recommended_config(course)
    name = "03_your_own_optimizer.ipynb"
    (course / "source" / "stepwise").mkdir(parents=True)
    source = course / "source" / "stepwise" / name  # its definitions and checks: fast to run
    source.write_text(json.dumps(hostile.honest()), encoding="utf-8")
    _nbgrader("generate_assignment", "stepwise", cwd=course)
    nb = nbformat.read(source, 4)
    answer = next(i for i, c in enumerate(nb.cells) if c.source.startswith("class PlainSGD("))
    nb.cells.insert(answer + 1, nbformat.v4.new_code_cell(hostile.TUNED.strip()))
    nb.cells.insert(0, nbformat.v4.new_code_cell('import os\nos.environ["STEPWISE_GRADING"] = "0"'))
    folder = course / "submitted" / "mallory" / "stepwise"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / name)
    _nbgrader("autograde", "stepwise", "--create", cwd=course)
    _nbgrader("export", cwd=course)
    with open(course / "grades.csv", newline="") as f:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    assert scores == {"mallory": 4.0}
    graded = nbformat.read(course / "autograded" / "mallory" / "stepwise" / name, 4)
    errors = {c.metadata["nbgrader"]["grade_id"]: o["evalue"] for c in graded.cells
              if c.metadata.get("nbgrader", {}).get("grade")
              for o in c.outputs if o.output_type == "error"}
    assert list(errors) == ["check03_1"] and "hidden case" in errors["check03_1"], errors
