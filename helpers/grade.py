"""Grade a class: ``python -m helpers.grade SUBMISSIONS… --out grades.csv``.

SUBMISSIONS are notebooks or folders searched for ``*.ipynb`` (nbgrader's ``submitted/``
tree, a folder of renamed files, …). Each submission runs in its own process with time and
memory limits; each exercise is checked in its own child with the grader's pristine checkers,
their hidden cases, and the library refused as an answer (see README, "For instructors").

Writes one row per exercise to the gradebook CSV (atomically; a re-run grades only the
submissions not in it yet, unless --force) and, with --feedback DIR, one text file per student.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import io
import os
import sys
import tempfile
import threading
import tomllib
from pathlib import Path

from helpers.grading.run import Limits, Zygote, grade_submission, snapshot_tree
from helpers.grading.submission import Reference, load_references, read_submission

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = (
    "student",
    "notebook",
    "exercise",
    "points",
    "max",
    "verdict",
    "message",
    "hints used",
    "seconds",
)


def find_notebooks(paths):
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        else:
            found.append(path)
    return found


def read_points(path) -> dict[str, float]:
    """points.toml: ``"03.1" = 2`` lines, at the top or under ``[points]``."""
    if path is None:
        return {}
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    table = data.get("points", data)
    return {str(k): float(v) for k, v in table.items() if isinstance(v, int | float)}


def _rows_for(submission, reference: Reference, points, outcome, why_zero=None):
    rows = []
    for exercise_id, _, default in reference.exercises:
        most = points.get(exercise_id, default)
        verdict = {} if why_zero else outcome.verdicts.get(exercise_id, {})
        status = verdict.get("status") or "failed"
        message = (
            why_zero
            or verdict.get("message")
            or (
                "no verdict: the submission's process ended or hung before this check (see the notes)"
            )
        )
        rows.append(
            {
                "student": submission.student,
                "notebook": reference.stem,
                "exercise": exercise_id,
                "points": f"{most if status == 'passed' else 0:g}",
                "max": f"{most:g}",
                "verdict": status,
                "message": str(message),
                "hints used": int(verdict.get("hints", 0) or 0),
                "seconds": f"{float(verdict.get('seconds', 0) or 0):.2f}",
            }
        )
    return rows


class Grader:
    def __init__(self, references, points, limits, notebook=None):
        self.references = references
        self.points = points
        self.limits = limits
        self.notebook = notebook
        self.helpers_files = snapshot_tree(ROOT / "helpers")  # read once, before any student code
        self.stems = {r.stem for r in references.values()}
        self.zygote = None  # started for the first submission that runs
        self.lock = threading.Lock()

    def zygotes(self, dead):
        """The live zygote: a new one if it is ``dead`` or has ended (a submission can kill it)."""
        with self.lock:
            if self.zygote is not None and (self.zygote is dead or self.zygote.process.poll() is not None):
                self.zygote.close()
                self.zygote = None
            if self.zygote is None:
                self.zygote = Zygote(self.helpers_files)
            return self.zygote

    def close(self):
        if self.zygote is not None:
            self.zygote.close()

    def grade(self, path):
        """(rows, feedback notes) of one submission."""
        submission = read_submission(path, self.stems)
        found = submission.notebook
        wanted = self.notebook or found
        reference = self.references.get(wanted) if wanted else None
        if reference is None:
            reason = submission.error or "no exercise of this series found in the notebook"
            stem = path.stem
            return [
                dict(
                    zip(COLUMNS, (submission.student, stem, "", 0, 0, "failed", reason, 0, "0.00"))
                )
            ], []
        if submission.error:
            return _rows_for(submission, reference, self.points, None, submission.error), []
        if found and found != wanted:
            why = f"this is notebook {found}, not {wanted}: wrong notebook handed in"
            return _rows_for(submission, reference, self.points, None, why), []
        exercises = [(i, expression) for i, expression, _ in reference.exercises]
        outcome = grade_submission(
            self.zygotes, submission.cells, exercises, self.helpers_files, self.limits,
            submission.checked_at,
        )
        return _rows_for(submission, reference, self.points, outcome), outcome.cell_errors


def write_atomically(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def read_gradebook(path: Path):
    if not path.exists():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def gradebook_text(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: (r["student"], r["notebook"], r["exercise"])))
    return out.getvalue()


def feedback_text(student, rows, notes):
    lines = [f"Feedback for {student}", ""]
    for notebook in dict.fromkeys(r["notebook"] for r in rows):
        mine = [r for r in rows if r["notebook"] == notebook]
        total = sum(float(r["points"]) for r in mine)
        most = sum(float(r["max"]) for r in mine)
        lines.append(f"{notebook}: {total:g}/{most:g} points")
        for r in mine:
            lines.append(
                f"- {r['exercise'] or '(notebook)'}: {r['points']}/{r['max']} {r['verdict']}"
            )
            lines += ["    " + line for line in str(r["message"]).splitlines()]
        lines.append("")
    if notes:
        lines.append("Notes on your notebook's cells:")
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


class _Bar:
    def __init__(self, total, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.on = stream.isatty() and total > 0
        self.lock = threading.Lock()

    def advance(self, label):
        with self.lock:
            self.done += 1
            if self.on:
                filled = 30 * self.done // self.total
                self.stream.write(
                    f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {label[:30]:<30}"
                )
                self.stream.flush()
                if self.done == self.total:
                    self.stream.write("\n")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m helpers.grade", description=__doc__.split("\n")[0]
    )
    parser.add_argument("submissions", nargs="+", help="notebooks, or folders of notebooks")
    parser.add_argument("--out", required=True, type=Path, help="the gradebook CSV")
    parser.add_argument("--feedback", type=Path, help="folder for one feedback file per student")
    parser.add_argument(
        "--points", help="points.toml: '\"03.1\" = 2' per exercise (default: 1 each)"
    )
    parser.add_argument(
        "--notebook", help="the assignment, e.g. 03 (default: what each submission is)"
    )
    parser.add_argument(  # twice the cores: a submission often just waits for a deadline
        "--jobs", type=int, default=2 * (os.cpu_count() or 1),
        help="submissions graded at once (default: twice the number of cores)",
    )
    parser.add_argument("--force", action="store_true", help="grade again what the gradebook has")
    for name, default in vars(Limits()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = parser.parse_args(argv)

    limits = Limits(**{name: getattr(args, name) for name in vars(Limits())})
    grader = Grader(
        load_references(ROOT / "solutions"), read_points(args.points), limits, args.notebook
    )
    rows = read_gradebook(args.out)
    paths = find_notebooks(args.submissions)
    if not args.force:
        done = {(r["student"], r["notebook"]) for r in rows}
        paths = [p for p in paths if _key(grader, p) not in done]
    todo = {_key(grader, p) for p in paths}
    rows = [r for r in rows if (r["student"], r["notebook"]) not in todo]
    notes: dict[str, list[str]] = {}
    bar = _Bar(len(paths))
    lock = threading.Lock()

    def one(path):
        new, cell_notes = grader.grade(path)
        with lock:
            rows.extend(new)
            notes.setdefault(new[0]["student"], []).extend(cell_notes)
            write_atomically(args.out, gradebook_text(rows))  # a crash loses no finished grade
        bar.advance(str(path.name))

    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            list(pool.map(one, paths))
    finally:
        grader.close()
    write_atomically(args.out, gradebook_text(rows))
    if args.feedback:
        for student in sorted({r["student"] for r in rows}):
            mine = [r for r in rows if r["student"] == student]
            text = feedback_text(student, mine, notes.get(student, []))
            write_atomically(args.feedback / f"{_safe(student)}.txt", text)
    total = len({r["student"] for r in rows})
    print(f"graded {len(paths)} submission(s); the gradebook {args.out} holds {total} student(s)")
    return 0


def _key(grader, path):
    submission = read_submission(path, grader.stems)
    wanted = grader.notebook or submission.notebook
    reference = grader.references.get(wanted) if wanted else None
    return submission.student, reference.stem if reference else path.stem


def _safe(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


if __name__ == "__main__":
    sys.exit(main())
