"""Instructors can feed solutions/ to `nbgrader generate_assignment` unchanged."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


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
