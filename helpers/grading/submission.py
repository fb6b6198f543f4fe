"""Reading submissions: which notebook, which student, which code to run, which exercises.

Exercises are found by what a student cannot lose by moving cells: the ``### Exercise NN.K``
headings, the ``Exercise NN.K`` text of the stubs and the ``check("NN.K", …)`` cells. What
to check, and for how many points, comes from the grader's own ``solutions/`` notebook, never
from the submission.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_MENTION = re.compile(r"(?:Exercise\s+|check\(\s*[\"'])(\d\d)\.(\d+)")
_NBGRADER_TREES = ("submitted", "autograded", "feedback")


@dataclass(frozen=True)
class Reference:
    """One notebook of the series as the grader knows it (from ``solutions/``)."""

    stem: str  # "03_your_own_optimizer"
    number: str  # "03"
    exercises: tuple[tuple[str, str, float], ...]  # (exercise id, candidate expression, points)


def check_call(node):
    """(exercise id, candidate expression) of a statement ``check("NN.K", expr)``, else None."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return None
    call = node.value
    if not (isinstance(call.func, ast.Name) and call.func.id == "check" and len(call.args) >= 2):
        return None
    first = call.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    return first.value, ast.unparse(call.args[1])


def _check_calls(source):
    """The check calls of a cell made only of check calls, else None."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    calls = [check_call(node) for node in body]
    return calls if body and all(calls) else None


def _source(cell):
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def load_references(solutions: Path) -> dict[str, Reference]:
    """{notebook number: Reference} from the grader's ``solutions/`` notebooks."""
    references = {}
    for path in sorted(solutions.glob("[0-9][0-9]_*.ipynb")):
        exercises = []
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            calls = _check_calls(_source(cell)) if cell.get("cell_type") == "code" else None
            points = float(cell.get("metadata", {}).get("nbgrader", {}).get("points", 1))
            exercises += [
                (exercise_id, expression, points) for exercise_id, expression in calls or ()
            ]
        if exercises:
            references[path.name[:2]] = Reference(path.stem, path.name[:2], tuple(exercises))
    return references


@dataclass
class Submission:
    path: Path
    student: str
    cells: list[str] = field(default_factory=list)  # code to run, check cells left out
    mentioned: Counter = field(default_factory=Counter)  # notebook number -> exercises named
    checked_at: dict = field(default_factory=dict)  # exercise id -> cells run before its check cell
    error: str | None = None  # why the file is not a notebook we can read

    @property
    def notebook(self):
        """The notebook number this submission is for, or None."""
        return self.mentioned.most_common(1)[0][0] if self.mentioned else None


def student_of(path: Path, notebook_stems) -> str:
    """nbgrader trees: submitted/STUDENT/ASSIGNMENT/x.ipynb; a file named like a notebook of the
    series: its folder; anything else: the file's name."""
    parts = path.parts
    for tree in _NBGRADER_TREES:
        if tree in parts[:-1]:
            i = len(parts) - 2 - parts[:-1][::-1].index(tree)
            if i + 1 < len(parts) - 1:
                return parts[i + 1]
    if path.stem in notebook_stems or re.fullmatch(r"\d\d_\w+", path.stem):
        return path.parent.name or path.stem
    return path.stem


def _code(source):
    """A cell's code with IPython's magics and shell escapes commented out."""
    return "\n".join(
        "# " + line if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")
    )


def read_submission(path: Path, notebook_stems) -> Submission:
    submission = Submission(path, student_of(path, notebook_stems))
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells")
        if not isinstance(cells, list):
            raise ValueError("no list of cells")
    except (OSError, ValueError, AttributeError, UnicodeDecodeError) as error:
        submission.error = f"not a readable notebook ({type(error).__name__})"
        return submission
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        source = _source(cell)
        submission.mentioned.update(m[1] for m in _MENTION.finditer(source))
        calls = _check_calls(source) if cell.get("cell_type") == "code" else None
        for exercise_id, _ in calls or ():  # the answer is taken where the notebook checks it
            submission.checked_at.setdefault(exercise_id, len(submission.cells))
        if cell.get("cell_type") == "code" and calls is None and source.strip():
            submission.cells.append(_code(source))
    return submission
