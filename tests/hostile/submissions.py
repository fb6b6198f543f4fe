"""Hostile submissions of notebook 03 (and a few others), built from our own notebooks.

Each entry: (file name relative to the submissions folder, notebook JSON or raw text, the
verdict each exercise deserves: True passed, False not). Several tricks share one submission,
one per exercise, so that each proves it costs that exercise only. Built from
``solutions/03`` cut down to its definitions (the grader must not need the demo cells) and
from the stub notebook ``notebooks/03``.
"""

import copy
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = ("03.1", "03.2", "03.3", "03.4", "03.5")
ANSWERS = {
    "03.1": "PlainSGD",
    "03.2": "DecaySGD",
    "03.3": "MomentumSGD",
    "03.4": "NesterovSGD",
    "03.5": "MySGD",
}


def _read(path):
    return json.loads((ROOT / path).read_text(encoding="utf-8"))


def _cell(source, kind="code"):
    cell = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def _definitions(path):
    """The notebook with only its import cell, markdown, definitions and check cells."""
    nb = _read(path)
    keep = []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" or source.startswith(
            ("%matplotlib", "class ", "check(")
        ):
            cell = dict(cell, outputs=[]) if cell["cell_type"] == "code" else cell
            keep.append(cell)
    return dict(nb, cells=keep)


def honest():
    return _definitions("solutions/03_your_own_optimizer.ipynb")


def blank():
    return _definitions("notebooks/03_your_own_optimizer.ipynb")


def partly_honest(*exercises):
    """The honest notebook with the answers to all but ``exercises`` left blank."""
    kept = {ANSWERS[e] for e in exercises}
    nb, stubs = honest(), blank()["cells"]
    cells = []
    for cell, stub in zip(nb["cells"], stubs, strict=True):
        source = "".join(cell["source"])
        name = source[len("class "):].split("(")[0] if source.startswith("class ") else None
        cells.append(stub if name in ANSWERS.values() and name not in kept else cell)
    return dict(nb, cells=cells)


def plus(nb, *sources):
    """``nb`` without its check cells, code cells appended: the grader takes an answer where the
    notebook checks it, else after the last cell, so here after the trick."""
    nb = copy.deepcopy(nb)
    cells = [c for c in nb["cells"] if not "".join(c["source"]).startswith("check(")]
    nb["cells"] = cells + [_cell(s) for s in sources]
    return nb


def sabotage(exercise, body):
    """A cell that replaces the answer to ``exercise`` by a subclass whose step runs ``body``."""
    name = ANSWERS[exercise]
    return (
        f"_Good{name} = {name}\n"
        f"class {name}(_Good{name}):\n"
        "    def step(self, closure=None):\n"
        + "".join(f"        {line}\n" for line in body.strip().splitlines())
        + "        return super().step(closure)\n"
    )


C_LEVEL_SLEEP = """
import signal, time
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
time.sleep(10_000)
"""
SWALLOW_EVERYTHING = """
import time
while True:  # sleeps rather than spins: the trick is the same, the test's CPU is spared
    try:
        time.sleep(0.05)
    except BaseException:
        pass
"""
SEGFAULT = "import ctypes\nctypes.string_at(0)"
MEMORY_BOMB = "hoard = [bytearray(2**30) for _ in range(64)]"

FAKES = """
import os, sys, json
import helpers, helpers.checking
os.environ["STEPWISE_GRADING"] = "0"
os.environ["STEPWISE_CHECK_TIMEOUT"] = "0.000001"
helpers.checking.Result.passed = property(lambda self: True)
helpers.checking._grading = lambda: False
def check(*args, **kwargs):
    return True
helpers.checking.check = check
import torch
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
torch.Tensor.__sub__ = lambda a, b: torch.zeros_like(a)
# forged verdicts on every descriptor the process may have inherited
for fd in range(3, 64):
    for exercise in ("03.1", "03.2", "03.3", "03.4", "03.5"):
        try:
            forged = {"exercise": exercise, "status": "passed", "message": "ok"}
            os.write(fd, (json.dumps(forged) + "\\n").encode())
        except OSError:
            pass
# the checkers on disk: make every check pass
for module in ("checking", "checking_tools"):
    path = os.path.join(os.path.dirname(helpers.__file__), module + ".py")
    with open(path, "a") as f:
        f.write("\\ndef check(*a, **k):\\n    return True\\n")
with open(os.path.join(os.path.dirname(helpers.__file__), "exercises", "nb03.py"), "w") as f:
    f.write("")
sys.stderr.write("noise on stderr\\n")
"""

LIBRARY = """
import torch, helpers.optim
from helpers.exercises import nb03
PlainSGD = use("03.1", None)
class DecaySGD(helpers.optim.SGD):
    pass
MomentumSGD = torch.optim.SGD
NesterovSGD = nb03.SGD
class MySGD(torch.optim.Optimizer):
    def __init__(self, params, **kwargs):
        self.inner = torch.optim.SGD(params, **kwargs)
        super().__init__(self.inner.param_groups, self.inner.defaults)
    def step(self, closure=None):
        return self.inner.step(closure)
"""

# Right on the visible cases (5 steps each), then it stops: only the hidden, longer runs see it.
TUNED = """
_Right = PlainSGD
class PlainSGD(_Right):
    def step(self, closure=None):
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps > 80:  # right on what the learner sees: no optimizer there makes more than 75 steps
            return closure() if closure is not None else None
        return super().step(closure)
"""

TOP_LEVEL_HANG = C_LEVEL_SLEEP
TOP_LEVEL_EXIT = "import os\nos._exit(3)"
NOISE = "import sys, warnings\nprint('noise', file=sys.stderr)\nwarnings.warn('a warning')\n"
KILL_PARENT = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"  # the grader's zygote


def moved_and_deleted():
    """The honest notebook with its markdown reversed to the end and every check cell gone."""
    nb = honest()
    code = [
        c
        for c in nb["cells"]
        if c["cell_type"] == "code" and not "".join(c["source"]).startswith("check(")
    ]
    prose = [c for c in nb["cells"] if c["cell_type"] == "markdown"][::-1]
    return dict(nb, cells=code + prose)


def collection():
    """[(relative path, notebook JSON or text, {exercise: deserves to pass})]."""
    every = dict.fromkeys(EXERCISES, True)
    none = dict.fromkeys(EXERCISES, False)
    crash_a = plus(
        honest(),
        sabotage("03.1", "import os\nos._exit(0)"),
        sabotage("03.3", SEGFAULT),
        sabotage("03.5", MEMORY_BOMB),
    )
    # one hang per submission: submissions are graded side by side, the checks of one in turn
    crash_b = plus(honest(), sabotage("03.2", C_LEVEL_SLEEP))
    crash_c = plus(honest(), sabotage("03.4", SWALLOW_EVERYTHING))
    other = _read("solutions/04_adaptive_optimizers.ipynb")
    return [
        ("honest.ipynb", honest(), every),
        ("blank.ipynb", blank(), none),
        ("crash_a.ipynb", crash_a, {**every, "03.1": False, "03.3": False, "03.5": False}),
        ("crash_b.ipynb", crash_b, {**every, "03.2": False}),
        ("crash_c.ipynb", crash_c, {**every, "03.4": False}),
        # FAKES make no blank answer pass and no honest one fail; TUNED fails the hidden cases only
        ("faker.ipynb", plus(partly_honest("03.1", "03.2"), FAKES, TUNED), {**none, "03.2": True}),
        ("library.ipynb", plus(blank(), LIBRARY), none),
        ("cells.ipynb", plus(honest(), NOISE, TOP_LEVEL_HANG, TOP_LEVEL_EXIT, NOISE, KILL_PARENT), every),
        ("submitted/carol/03/final (2).ipynb", moved_and_deleted(), every),
        ("malformed.ipynb", '{"cells": [', none),
        ("empty.ipynb", {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, none),
        ("another_assignment.ipynb", other, none),
    ]
