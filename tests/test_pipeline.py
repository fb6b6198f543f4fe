"""The solutions → notebooks generator (tools/pipeline.py)."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import pipeline  # noqa: E402

SOLVED = '''def step(params, lr):
    """Update in place."""
    ### BEGIN SOLUTION
    for p in params:
        p -= lr * p.grad
    ### END SOLUTION
'''


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    for i, cell in enumerate(cells):
        cell.id = f"c{i}"
        nb.cells.append(cell)
    return nb


def md(text, **meta):
    return nbformat.v4.new_markdown_cell(text, metadata=meta)


def code(text, **meta):
    cell = nbformat.v4.new_code_cell(text, metadata=meta)
    cell.outputs = [nbformat.v4.new_output("stream", text="out\n")]
    cell.execution_count = 3
    return cell


def test_code_region_becomes_a_stub_named_after_the_exercise():
    nb = notebook(md("### Exercise 03.2 — weight decay"), code(SOLVED))
    source = pipeline.student_version(nb).cells[1].source
    assert "p -= lr" not in source and "BEGIN SOLUTION" not in source
    assert '    raise NotImplementedError("Exercise 03.2: replace this line with your code")' in source
    assert source.startswith('def step(params, lr):\n    """Update in place."""')


def test_student_stub_runs_and_raises_not_implemented():
    nb = notebook(md("### Exercise 01.1 — a step"), code(SOLVED))
    namespace = {}
    exec(pipeline.student_version(nb).cells[1].source, namespace)  # the cell itself runs
    with pytest.raises(NotImplementedError, match="Exercise 01.1"):
        namespace["step"]([], 0.1)


def test_markdown_answer_and_instructor_cells():
    nb = notebook(md("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
                  code("secret = 1", tags=["instructor"]), code("x = 1", tags=["nbval-ignore-output"]))
    student = pipeline.student_version(nb)
    assert [c.source for c in student.cells] == ["Why?\n*YOUR ANSWER HERE*", "x = 1"]
    assert student.cells[1].metadata == {"tags": ["nbval-ignore-output"]}


def test_outputs_counts_and_metadata_are_cleared():
    nb = notebook(code("print(1)", collapsed=True, scrolled=False))
    nb.metadata = {"kernelspec": {"name": "other"}, "widgets": {"state": {}}}
    student = pipeline.student_version(nb)
    cell = student.cells[0]
    assert cell.outputs == [] and cell.execution_count is None and cell.metadata == {}
    assert student.metadata == {"kernelspec": pipeline.KERNELSPEC, "language_info": {"name": "python"}}
    assert cell.id == "c0"


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
    ("x = (1,\n### BEGIN SOLUTION\n2)\n### END SOLUTION", "not valid Python"),
])
def test_malformed_regions_are_reported_with_the_cell(source, problem):
    with pytest.raises(pipeline.PipelineError, match=problem) as error:
        pipeline.student_version(notebook(code(source)), "nb.ipynb")
    assert "nb.ipynb, cell 0" in str(error.value)


def test_nbgrader_metadata_marks_solution_and_check_cells():
    nb = notebook(code('wrong = None\ncheck("02.1", wrong)'), md("### Exercise 02.1 — fix it"),
                  code(SOLVED), code('check("02.1", step)'), code(SOLVED), code('check("02.1", step)'),
                  code("x = 1", nbgrader={"solution": True}))
    pipeline.stamp_nbgrader(nb)
    assert nb.cells[2].metadata.nbgrader == dict(grade=False, grade_id="ex02_1", locked=False,
                                                 solution=True, task=False, schema_version=3)
    assert nb.cells[3].metadata.nbgrader["grade"] is True
    assert nb.cells[3].metadata.nbgrader["grade_id"] == "check02_1"
    assert nb.cells[4].metadata.nbgrader["grade_id"] == "ex02_1_2"
    assert nb.cells[5].metadata.nbgrader["grade_id"] == "check02_1_2"
    assert "nbgrader" not in nb.cells[0].metadata  # a demo check, not the exercise's
    assert "nbgrader" not in nb.cells[6].metadata


def test_generation_is_byte_stable():
    for path in pipeline.solutions():
        nb = nbformat.read(path, 4)
        first = pipeline.serialize(pipeline.student_version(nb))
        assert first == pipeline.serialize(pipeline.student_version(nbformat.read(path, 4)))


def test_check_sync_fails_naming_the_notebook_when_a_solution_changes(tmp_path, monkeypatch, capsys):
    """A clone where a solution changed but notebooks/ was not regenerated fails check-sync
    (the command's exit status, which make check-sync relies on), naming only that notebook;
    make notebooks (generate) brings it back in sync."""
    clone = tmp_path / "repo"
    shutil.copytree(ROOT / "tools", clone / "tools")
    changed, other = (path.name for path in pipeline.solutions()[:2])
    for part in ("solutions", "notebooks"):
        (clone / part).mkdir()
        for name in (changed, other):
            shutil.copy(ROOT / part / name, clone / part / name)
    monkeypatch.setattr(pipeline, "ROOT", clone)
    monkeypatch.setattr(pipeline, "SOLUTIONS", clone / "solutions")
    monkeypatch.setattr(pipeline, "NOTEBOOKS", clone / "notebooks")
    assert pipeline.main(["check-sync"]) == 0, capsys.readouterr().out

    path = clone / "solutions" / changed
    nb = nbformat.read(path, 4)
    nb.cells.append(nbformat.v4.new_markdown_cell("A new paragraph."))
    nbformat.write(nb, path)
    result = subprocess.run([sys.executable, "tools/pipeline.py", "check-sync"], cwd=clone,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert changed in result.stdout and other not in result.stdout and "make notebooks" in result.stdout

    assert pipeline.main(["generate"]) == 0
    assert pipeline.main(["check-sync"]) == 0, capsys.readouterr().out
