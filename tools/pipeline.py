"""The solutions → notebooks pipeline.

    python tools/pipeline.py generate      # write notebooks/ from solutions/
    python tools/pipeline.py check-sync    # fail if notebooks/ differ from what solutions/ generate
    python tools/pipeline.py execute [NB…] # stamp nbgrader metadata, re-run solutions/ in place

A solution region is the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
(nbgrader's markers). In a student notebook it becomes one ``raise NotImplementedError``
line at the markers' indentation (code) or ``*YOUR ANSWER HERE*`` (markdown); cells tagged
``instructor`` are dropped; outputs, execution counts and metadata are cleared.
"""

import argparse
import ast
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"

BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
EXERCISE_HEADING = re.compile(r"^#+\s*Exercise\s+(\d\d\.\d+)", re.MULTILINE)
CHECK_CALL = re.compile(r"""^check\(\s*["'](\d\d\.\d+)["']""", re.MULTILINE)
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LANGUAGE_INFO = {"name": "python"}
TEXT_STUB = "*YOUR ANSWER HERE*"


class PipelineError(Exception):
    pass


def code_stub(exercise_id):
    what = f"Exercise {exercise_id}" if exercise_id else "Exercise"
    return f'raise NotImplementedError("{what}: replace this line with your code")'


def clear_regions(source, stub, where):
    """Replace every marked solution region in ``source`` by ``stub``, indented like the marker."""
    out, inside = [], False
    for line in source.splitlines():
        marker = line.strip().lstrip("#/ ").strip()
        if marker == BEGIN:
            if inside:
                raise PipelineError(f"{where}: nested '{BEGIN}'")
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + stub)
        elif marker == END:
            if not inside:
                raise PipelineError(f"{where}: '{END}' without '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise PipelineError(f"{where}: '{BEGIN}' is never closed")
    return "\n".join(out)


def has_region(cell):
    return any(line.strip().lstrip("#/ ").strip() == BEGIN for line in cell.source.splitlines())


def python_only(source):
    """The source without IPython magics and shell escapes, for a syntax check."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def student_version(nb, name="notebook"):
    """The student notebook for solution notebook ``nb`` (not modified)."""
    student = nbformat.v4.new_notebook()
    student.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    exercise_id = None
    for index, cell in enumerate(nb.cells):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "markdown":
            exercise_id = (EXERCISE_HEADING.findall(cell.source) or [exercise_id])[-1]
        if "instructor" in tags:
            continue
        where = f"{name}, cell {index}"
        if cell.cell_type == "code":
            source = clear_regions(cell.source, code_stub(exercise_id), where)
            try:
                ast.parse(python_only(source))
            except SyntaxError as error:
                raise PipelineError(f"{where}: student version is not valid Python: {error}") from None
            new = nbformat.v4.new_code_cell(source)
        elif cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(clear_regions(cell.source, TEXT_STUB, where))
        else:
            new = nbformat.v4.new_raw_cell(cell.source)
        new.id = cell.get("id") or f"cell-{index}"
        if tags:
            new.metadata["tags"] = tags
        student.cells.append(new)
    return student


def stamp_nbgrader(nb):
    """Give solution cells, and the cells that check them, the metadata nbgrader needs.

    A check cell is one that starts with ``check("NN.K", …)`` for the exercise whose heading
    it follows; nbgrader autogrades it (``STEPWISE_GRADING=1`` makes a failing check raise).
    """
    exercise_id, parts = None, {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            exercise_id = (EXERCISE_HEADING.findall(cell.source) or [exercise_id])[-1]
        checked = CHECK_CALL.match(cell.source.lstrip()) if cell.cell_type == "code" else None
        if has_region(cell):
            kind, meta = "ex", dict(grade=False, locked=False, solution=True, task=False)
        elif checked and checked.group(1) == exercise_id:
            kind, meta = "check", dict(grade=True, locked=True, points=1, solution=False, task=False)
        else:
            cell.metadata.pop("nbgrader", None)
            continue
        key = f"{kind}{(exercise_id or 'answer').replace('.', '_')}"
        parts[key] = parts.get(key, 0) + 1
        grade_id = key + (f"_{parts[key]}" if parts[key] > 1 else "")
        cell.metadata["nbgrader"] = {**meta, "grade_id": grade_id, "schema_version": 3}
    return nb


def serialize(nb):
    return nbformat.writes(nb) + "\n"


def write_atomic(path, text):
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as f:
        f.write(text)
    os.replace(f.name, path)


def solutions(names=()):
    paths = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [p for p in paths if any(p.name.startswith(n) for n in names)]
    return paths


def expected_students():
    return {NOTEBOOKS / p.name: serialize(student_version(nbformat.read(p, 4), p.name))
            for p in solutions()}


def generate():
    NOTEBOOKS.mkdir(exist_ok=True)
    expected = expected_students()
    for path, text in expected.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)
            print(f"wrote {path.relative_to(ROOT)}")
    for path in sorted(set(NOTEBOOKS.glob("*.ipynb")) - set(expected)):
        path.unlink()
        print(f"removed {path.relative_to(ROOT)} (no solution)")


def check_sync():
    expected = expected_students()
    stale = [p.name for p, text in expected.items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    stale += [p.name for p in sorted(set(NOTEBOOKS.glob("*.ipynb")) - set(expected))]
    if stale:
        print("notebooks/ out of sync with solutions/: " + ", ".join(stale))
        print("run `make notebooks` and commit the result")
        return 1
    print(f"notebooks/ in sync with solutions/ ({len(expected)} notebooks)")
    return 0


def execute(names=()):
    from nbclient import NotebookClient

    for path in solutions(names):
        with tempfile.TemporaryDirectory() as home:
            os.environ["STEPWISE_HOME"] = home  # fresh progress each, as under nbval
            nb = stamp_nbgrader(nbformat.read(path, 4))
            nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
            NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=False,
                           record_timing=False,
                           resources={"metadata": {"path": str(path.parent)}}).execute()
            nb.metadata["language_info"] = dict(LANGUAGE_INFO)
            write_atomic(path, serialize(nb))
            print(f"executed {path.relative_to(ROOT)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["generate", "check-sync", "execute"])
    parser.add_argument("names", nargs="*", help="notebook name prefixes, e.g. 03 (execute only)")
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            generate()
        elif args.command == "check-sync":
            return check_sync()
        else:
            execute(args.names)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
