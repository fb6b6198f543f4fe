"""The exercise check system: ``check``, ``hint``, ``progress``, ``use``.

A notebook exercise is checked with ``check("03.2", MySGD)``. The checker
registered for "03.2" (in ``helpers/exercises/nb03.py``) runs the learner's
code next to the reference and raises :class:`Mismatch` on the first failing
case. ``check`` turns everything that can go wrong (the stub still in place,
an exception, an endless loop, a wrong answer) into a short verdict and never
raises in learner mode. With ``strict=True`` or ``STEPWISE_GRADING=1`` a
verdict other than "passed" raises ``AssertionError`` (for graders and CI).

Every check appends one JSON line to ``records.jsonl`` and updates
``progress.json``, both in ``$STEPWISE_HOME`` (default ``.stepwise/`` in the
project root). This module needs no torch; see ``checking_tools`` for the
comparisons checkers use.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import html
import json
import linecache
import os
import re
import signal
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Mismatch",
    "Result",
    "case",
    "check",
    "exercise",
    "hint",
    "outside_candidate",
    "progress",
    "hidden_pass",
    "untimed",
    "use",
]

DEFAULT_TIMEOUT = 10.0  # seconds; override with STEPWISE_CHECK_TIMEOUT or check(timeout=…)


# --------------------------------------------------------------------------
# What checkers raise and register
# --------------------------------------------------------------------------


class Mismatch(Exception):
    """The candidate's answer differs from the reference on one case.

    ``case`` names the inputs, ``expected``/``got`` are the two answers,
    ``step`` the first step where they differ (for iterative code),
    ``cause`` the likely mistake in plain words, ``detail`` anything else
    (e.g. where the largest difference is).
    """

    def __init__(self, case, expected=None, got=None, *, step=None, cause=None, detail=None):
        super().__init__(case)
        self.case = case
        self.expected = expected
        self.got = got
        self.step = step
        self.cause = cause
        self.detail = detail


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    checker: Callable[[object], str | None]
    reference: object
    hints: tuple[str, ...]
    library: tuple[object, ...] = ()  # what the learner is asked to write: never an answer


_REGISTRY: dict[str, Exercise] = {}
_ID = re.compile(r"\d\d\.\d+")


def exercise(exercise_id, title, *, reference, hints, library=()):
    """Register the decorated function as the checker of ``exercise_id``.

    The checker takes the candidate, raises :class:`Mismatch` on the first
    failing case and returns a short description of what it verified.
    ``hints`` are 2–3 graduated hints, the last one nearly the answer.
    ``library``: the classes or functions the exercise asks the learner to write
    (``torch.optim.SGD``, …); with the reference, they are refused as answers,
    whether handed in as they are, subclassed, or called by the candidate.
    """
    if not _ID.fullmatch(exercise_id):
        raise ValueError(f"exercise id {exercise_id!r} is not of the form 'NN.K'")
    if not 2 <= len(hints) <= 3 or not all(isinstance(h, str) and h for h in hints):
        raise ValueError(f"exercise {exercise_id}: give 2–3 non-empty hints")

    def register(checker):
        old = _REGISTRY.get(exercise_id)
        if old is not None and old.checker.__module__ != checker.__module__:
            raise ValueError(
                f"exercise {exercise_id} is registered twice: "
                f"{old.checker.__module__} and {checker.__module__}"
            )
        answers = tuple(x for x in (reference, *library) if callable(x))
        _REGISTRY[exercise_id] = Exercise(exercise_id, title, checker, reference, tuple(hints), answers)
        return checker

    return register


def _sort_key(exercise_id):
    notebook, number = exercise_id.split(".")
    return int(notebook), int(number)


def _exercises() -> dict[str, Exercise]:
    """Every registered exercise, after importing all ``helpers/exercises/nb*`` modules."""
    from . import exercises

    exercises.load_all()
    return {i: _REGISTRY[i] for i in sorted(_REGISTRY, key=_sort_key)}


def _find(exercise_id):
    """The exercise ``exercise_id`` or None, importing only its own notebook's checkers."""
    from . import exercises

    exercises.load(str(exercise_id).split(".")[0])
    return _REGISTRY.get(exercise_id)


def _unknown(exercise_id) -> str:
    from . import exercises

    known = _exercises()
    notebook = str(exercise_id).split(".")[0]
    broken = exercises.load_errors().get(f"nb{notebook}")
    if broken:
        return f"the checks of notebook {notebook} failed to load ({broken}); please report this."
    close = difflib.get_close_matches(str(exercise_id), known, n=3, cutoff=0.5)
    parts = re.fullmatch(r"(\d+)\.(\d+)", str(exercise_id).strip())
    if parts and f"{int(parts[1]):02d}.{int(parts[2])}" in known:  # "3.2" means "03.2"
        close = [f"{int(parts[1]):02d}.{int(parts[2])}"]
    same_notebook = [i for i in known if i.startswith(notebook + ".")]
    suggestions = close or same_notebook or list(known)
    text = f"there is no exercise {str(exercise_id)!r}."
    if suggestions:
        text += " Did you mean " + ", ".join(suggestions) + "?"
    return text


# --------------------------------------------------------------------------
# Running the candidate: cases, timeouts, exceptions
# --------------------------------------------------------------------------


@contextlib.contextmanager
def case(name):
    """Run the candidate on one case: its exceptions are reported with ``name``."""
    rewatch = _watch["paused"] and not _watch["inside"] and _watch["profile"] is not None
    if rewatch:  # candidate code inside outside_candidate(): watched again
        sys.setprofile(_watch["profile"])
    _watch["inside"] += 1
    try:
        yield
    except BaseException as error:
        if not hasattr(error, "_stepwise_case"):
            error._stepwise_case = name
        raise
    finally:
        _watch["inside"] -= 1
        if rewatch:
            sys.setprofile(_watch["old"])


@contextlib.contextmanager
def outside_candidate():
    """Checker code that runs the candidate only inside ``case()`` blocks (references,
    comparisons): not watched for delegation to the library, which halves its cost."""
    if _watch["profile"] is None or _watch["inside"]:
        yield
        return
    sys.setprofile(_watch["old"])
    _watch["paused"] += 1
    try:
        yield
    finally:
        _watch["paused"] -= 1
        sys.setprofile(_watch["profile"])


class _Timeout(BaseException):
    """Raised inside the check when it runs too long (BaseException: not caught by
    the candidate's own ``except Exception``)."""


def _timeout_seconds(timeout):
    if timeout is None:
        timeout = os.environ.get("STEPWISE_CHECK_TIMEOUT", DEFAULT_TIMEOUT)
    return float(timeout)


_pause = None  # while a check runs: a function that pauses its deadline, returning "resume"


@contextlib.contextmanager
def _deadline(seconds):
    """Raise _Timeout after ``seconds``: SIGALRM on the main thread (where Jupyter
    runs cells), a line-tracing deadline on other threads."""
    global _pause
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):

        def on_alarm(signum, frame):
            raise _Timeout

        def pause():
            left = signal.setitimer(signal.ITIMER_REAL, 0)[0]
            return lambda: signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))

        start = time.monotonic()
        old_handler = signal.signal(signal.SIGALRM, on_alarm)
        old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
        _pause = pause
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
            _pause = None
            if old_delay:  # someone else's timer was running: give it back what is left
                left = max(old_delay - (time.monotonic() - start), 1e-3)
                signal.setitimer(signal.ITIMER_REAL, left, old_interval)
    else:
        clock = {"end": time.monotonic() + seconds, "paused": False}

        def tracer(frame, event, arg):
            if not clock["paused"] and time.monotonic() > clock["end"]:
                raise _Timeout
            return tracer

        def pause():
            clock["paused"], paused_at = True, time.monotonic()

            def resume():
                clock["end"] += time.monotonic() - paused_at
                clock["paused"] = False

            return resume

        old_trace = sys.gettrace()
        sys.settrace(tracer)
        _pause = pause
        try:
            yield
        finally:
            sys.settrace(old_trace)
            _pause = None


@contextlib.contextmanager
def untimed():
    """Pause the running check's timeout, e.g. around a slow one-off import in a checker."""
    resume = _pause() if _pause is not None else None
    try:
        yield
    finally:
        if resume is not None:
            resume()


@contextlib.contextmanager
def _preserved_torch_state():
    """Checkers seed and build tensors; the notebook must not notice."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    dtype, grad = torch.get_default_dtype(), torch.is_grad_enabled()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            torch.set_default_dtype(dtype)
            torch.set_grad_enabled(grad)


def _library_dirs():
    paths = sysconfig.get_paths()
    dirs = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]}
    dirs.add(str(Path(__file__).resolve().parent))
    return tuple(str(Path(d).resolve()) + os.sep for d in dirs)


_LIBRARY_DIRS = _library_dirs()


def _is_candidate_frame(filename):
    if filename.startswith("<"):
        return not filename.startswith("<frozen")  # <stdin>, <string>, <ipython-input-…>
    try:
        resolved = str(Path(filename).resolve())
    except (OSError, ValueError):
        return True
    return not resolved.startswith(_LIBRARY_DIRS)


_CELL = re.compile(r"(ipykernel_\d+[/\\]\d+\.py|<ipython-input-\d+-)")


def _where(filename, lineno):
    """A deterministic place name: 'your cell, line 3' or 'my_sgd.py, line 12'."""
    if _CELL.search(filename):
        return f"your cell, line {lineno}"
    return f"{Path(filename).name}, line {lineno}"


def _candidate_frame(error):
    """(place, source line) of the innermost traceback frame in the candidate's code."""
    found = None
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if _is_candidate_frame(code.co_filename):
            found = (code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    if found is None:
        return None
    filename, lineno = found
    return _where(filename, lineno), linecache.getline(filename, lineno).strip()


def _raised_by_candidate(error):
    """True if the innermost frame of the traceback is the candidate's own code."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return _is_candidate_frame(tb.tb_frame.f_code.co_filename)


# Error messages that have one usual cause in optimizer code.
_ERROR_HINTS = (
    (
        "leaf Variable that requires grad",
        "update parameters inside `with torch.no_grad():` (or decorate step with @torch.no_grad())",
    ),
    (
        "'float' object has no attribute 'backward'",
        "call backward() on the loss tensor; loss.item() is a plain float, for logging",
    ),
)


# --------------------------------------------------------------------------
# The library is not an answer
# --------------------------------------------------------------------------


def _public_name(obj):
    """'torch.optim.SGD' rather than 'torch.optim.sgd.SGD': the shortest module path that exports it."""
    module, name = getattr(obj, "__module__", "") or "", getattr(obj, "__qualname__", repr(obj))
    parts = module.split(".")
    for n in range(1, len(parts) + 1):
        if getattr(sys.modules.get(".".join(parts[:n])), name, None) is obj:
            return f"{'.'.join(parts[:n])}.{name}"
    return f"{module}.{name}" if module else name


def _whose(obj):
    name, short = _public_name(obj), getattr(obj, "__name__", "")
    owner = "torch's own" if name.startswith("torch.") else "the reference"
    return f"{owner} {short} ({name})" if short and short != name else f"{owner} {name}"


def _api_bases():
    """Classes an answer is meant to build on: their methods are the learner's to inherit."""
    bases = [object]
    torch = sys.modules.get("torch")
    if torch is not None:
        bases += [torch.optim.Optimizer, torch.nn.Module, torch.optim.lr_scheduler.LRScheduler]
    ours = sys.modules.get(f"{__package__}.lr_scheduler")
    if ours is not None:
        bases.append(ours.LRScheduler)
    return bases


def _code_of(obj, candidate):
    """The code objects that run when ``obj`` runs: a function's own, or the methods a class
    defines (and inherits, but for API bases and anything the candidate itself inherits)."""

    def unwrap(fn):
        fn = getattr(fn, "__func__", fn)
        while hasattr(fn, "__wrapped__"):
            fn = fn.__wrapped__
        return getattr(fn, "__code__", None)

    if not isinstance(obj, type):
        code = unwrap(obj)
        return {code} if code else set()
    skip = set(_api_bases()) - {obj}
    if isinstance(candidate, type):
        skip |= set(candidate.__mro__)
    codes = set()
    for cls in obj.__mro__:
        if cls in skip:
            continue
        for value in vars(cls).values():
            if isinstance(value, property):
                value = value.fget
            code = unwrap(value) if callable(value) or hasattr(value, "__func__") else None
            if code:
                codes.add(code)
    return codes


def _wrapper_codes(obj):
    """The code of the decorator layers around a library function (``functools.wraps`` chains, as
    torch's ``_no_grad`` and ``torch.no_grad()`` build): the frames between a caller and the code
    ``_code_of`` watches."""
    codes, fn = set(), getattr(obj, "__func__", obj)
    while not isinstance(obj, type) and hasattr(fn, "__wrapped__"):
        if hasattr(fn, "__code__"):
            codes.add(fn.__code__)
        fn = fn.__wrapped__
    return codes


_watch = {"profile": None, "old": None, "paused": 0, "inside": 0}  # the delegation watch of a check
_refuse_library = True  # tests of the checkers switch it off to run the references as candidates


def _library_answer(ex, candidate):
    """Why ``candidate`` is the library rather than an answer (is it, or subclasses it), or None."""
    if not (_refuse_library or _grading()):
        return None
    for obj in ex.library:
        if candidate is obj:
            return f"this is {_whose(obj)} — the exercise is to write it yourself"
        if isinstance(candidate, type) and isinstance(obj, type) and issubclass(candidate, obj):
            return (
                f"your class subclasses {_whose(obj)}, so its numbers are the library's — "
                "the exercise is to write it yourself"
            )
        borrowed = _borrowed_method(obj, candidate)
        if borrowed:
            return (
                f"your class takes its {borrowed} from {_whose(obj)} — the exercise is to write it yourself"
            )
    return None


def _borrowed_method(obj, candidate):
    """The name of a method the candidate's own classes take from ``obj`` (``get_lr = StepLR.get_lr``)."""
    if not isinstance(candidate, type):
        return None
    theirs = _code_of(obj, candidate)
    for cls in candidate.__mro__:
        if cls in _api_bases():
            continue
        for name, value in vars(cls).items():
            fn = getattr(value, "__func__", value)
            if getattr(fn, "__code__", None) in theirs:
                return name
    return None


@contextlib.contextmanager
def _watch_delegation(ex, candidate):
    """Record the library code the candidate's own code calls while the check runs."""
    watched, wrappers = {}, set()
    for obj in ex.library if _refuse_library or _grading() else ():
        for code in _code_of(obj, candidate):
            watched.setdefault(code, obj)
        wrappers |= _wrapper_codes(obj)
    called = []
    old = sys.getprofile()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in watched and not called:
            caller = frame.f_back
            while caller is not None and caller.f_code in wrappers:  # a decorator's frame: look past it
                caller = caller.f_back
            if caller is not None and _is_candidate_frame(caller.f_code.co_filename):
                called.append(watched[frame.f_code])
        if old is not None:
            old(frame, event, arg)

    sys.setprofile(profile if watched else old)
    _watch.update(profile=profile if watched else None, old=old, paused=0, inside=0)
    try:
        yield called
    finally:
        sys.setprofile(old)
        _watch.update(profile=None, old=None)


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

_MARK = {"passed": "✅", "failed": "❌", "not attempted": "○"}
_COLOR = {"passed": "#2e7d32", "failed": "#c62828", "not attempted": "#757575"}


@dataclass(frozen=True)
class Result:
    """The verdict of one check. ``str()`` and ``repr()`` give the plain text."""

    exercise: str
    status: str  # "passed" | "failed" | "not attempted"
    message: str  # what was verified, or why it failed
    title: str = ""
    details: tuple[tuple[str, str], ...] = ()  # (label, value) lines under a failure

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def _headline(self):
        name = f"Exercise {self.exercise}" + (f" ({self.title})" if self.title else "")
        if self.status == "not attempted":
            return f"{_MARK[self.status]} {self.message}"
        if self.status == "passed":
            return f"{_MARK['passed']} {name} passed: {self.message}"
        return f"{_MARK['failed']} {name} failed" + ("" if self.details else f": {self.message}")

    def __str__(self):
        _shown.add(id(self))  # printed or displayed by the learner's cell: not shown again
        return self.text()

    def text(self):
        """The plain text, without counting as shown."""
        lines = [self._headline()]
        width = max((len(label) for label, _ in self.details), default=0)
        for label, value in self.details:
            value = value.replace("\n", "\n   " + " " * (width + 2))
            lines.append(f"   {label + ':':<{width + 1}} {value}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self):
        _shown.add(id(self))
        rows = "".join(
            f"<tr><td style='padding:0 8px 0 0;vertical-align:top'>{html.escape(label)}</td>"
            f"<td><code style='white-space:pre-wrap'>{html.escape(value)}</code></td></tr>"
            for label, value in self.details
        )
        table = f"<table style='margin-top:4px'>{rows}</table>" if rows else ""
        return (
            f"<div style='border-left:4px solid {_COLOR[self.status]};padding:4px 10px'>"
            f"{html.escape(self._headline())}{table}</div>"
        )


def _show(value):
    """A one-line, deterministic rendering of a value for messages."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        with _print_options(torch):
            shown = repr(value.detach())
        return re.sub(r"\s*\n\s*", " ", shown)
    if isinstance(value, str):  # checkers may describe a value in words
        return value
    if isinstance(value, float):  # 0.081, not 0.08100000000000002: 15 digits are all float64 holds
        return repr(float(f"{value:.15g}"))
    text = repr(value)
    if re.search(r" at 0x[0-9a-f]+", text):  # default object repr: hide the address
        text = f"<{type(value).__name__} object>"
    return text


@contextlib.contextmanager
def _print_options(torch):
    saved = torch._tensor_str.PRINT_OPTS.__dict__.copy()
    torch.set_printoptions(precision=6, threshold=12, edgeitems=3, linewidth=10_000)
    try:
        yield
    finally:
        torch._tensor_str.PRINT_OPTS.__dict__.update(saved)


def _mismatch_result(ex, mismatch):
    details = [("case", str(mismatch.case))]
    if mismatch.step is not None:
        details.append(("step", str(mismatch.step)))
    if mismatch.detail:
        details.append(("detail", str(mismatch.detail)))
    if mismatch.expected is not None or mismatch.got is not None:
        details.append(("expected", _show(mismatch.expected)))
        details.append(("got", _show(mismatch.got)))
    if mismatch.cause:
        details.append(("likely cause", str(mismatch.cause)))
    return Result(ex.id, "failed", f"case {mismatch.case}", ex.title, tuple(details))


def _error_result(ex, error):
    text = f"{type(error).__name__}: {error}".rstrip(": ")
    details = []
    if hasattr(error, "_stepwise_case"):
        details.append(("case", str(error._stepwise_case)))
    frame = _candidate_frame(error)
    if frame:
        place, source = frame
        details.append(("your code raised", text))
        details.append(("at", place + (f": {source}" if source else "")))
    else:
        details.append(("raised", text))
    advice = getattr(error, "_stepwise_hint", None) or next(
        (advice for pattern, advice in _ERROR_HINTS if pattern in str(error)), None)
    if advice is None and "NoneType" in str(error):
        advice = ("a value is None here: .grad is None until the first backward() (and for a "
                  "parameter the loss does not use), and a function without `return` returns None")
    if advice:
        details.append(("hint", advice))
    return Result(ex.id, "failed", text, ex.title, tuple(details))


def _timeout_result(ex, error, seconds):
    details = []
    if hasattr(error, "_stepwise_case"):
        details.append(("case", str(error._stepwise_case)))
    details.append(
        (
            "timed out",
            (
                f"no answer after {seconds:g} s. An infinite loop? "
                "(a loop whose condition never changes, or a counter you forgot to advance)"
            ),
        )
    )
    return Result(ex.id, "failed", f"timed out after {seconds:g} s", ex.title, tuple(details))


def _not_attempted(exercise_id, title=""):
    return Result(
        exercise_id,
        "not attempted",
        f"Exercise {exercise_id} is not attempted yet — replace the `raise NotImplementedError` "
        f"line. hint('{exercise_id}') if you are stuck.",
        title,
    )


# --- Hidden cases (issue 15). In grading mode ``_run`` runs each checker a second time with
# ``hidden_pass()`` true; the comparisons of ``checking_tools`` then draw other seeds and run
# longer, and a checker may add cases of its own: ``if hidden_pass(): cases.append(...)``.
_hidden = False


def hidden_pass() -> bool:
    """True while the grader re-runs a checker on cases the learner never sees."""
    return _hidden


def _in_hidden_pass(result):
    """Mark a failure found by the hidden pass: the learner cannot replay that case."""
    if not _hidden:
        return result
    note = ("hidden case", "the grader's own case (other seeds, longer runs), not shown in the notebook")
    return Result(result.exercise, result.status, result.message, result.title, (note, *result.details))


def _run(ex, candidate, timeout):
    seconds = _timeout_seconds(timeout)
    if "torch" in sys.modules:
        # torch.optim imports torch._dynamo on first use: seconds that must not count
        # against the learner's timeout.
        import torch._dynamo  # noqa: F401
    if candidate is None:
        text = ("you handed in None: pass the function or class itself, e.g. check('03.1', MySGD) "
                "(did the cell that defines it run, and does it `return`?)")
        return Result(ex.id, "failed", text, ex.title, (("not an answer", text),))
    refused = _library_answer(ex, candidate)
    if refused:
        return Result(ex.id, "failed", refused, ex.title, (("not an answer", refused),))
    global _hidden
    called = []
    try:
        with _preserved_torch_state(), _deadline(seconds), _watch_delegation(ex, candidate) as called:
            verified = ex.checker(candidate)
            if _grading():  # issue 15: the grader's hidden cases, after the learner's own
                _hidden = True
                ex.checker(candidate)
                verified = (verified or "all cases passed") + ", and the grader's hidden cases"
        result = Result(ex.id, "passed", verified or "all cases passed", ex.title)
    except Mismatch as mismatch:
        result = _in_hidden_pass(_mismatch_result(ex, mismatch))
    except NotImplementedError as error:
        result = _not_attempted(ex.id, ex.title) if _raised_by_candidate(error) else _error_result(ex, error)
    except _Timeout as error:
        result = _in_hidden_pass(_timeout_result(ex, error, seconds))
    except Exception as error:  # noqa: BLE001 (the learner's code may raise anything)
        result = _in_hidden_pass(_error_result(ex, error))
    finally:
        _hidden = False
    if called and result.status != "not attempted":  # the library's numbers say nothing of the learner's
        refused = (
            f"your code calls {_whose(called[0])} to do the work — the exercise is to write it yourself"
        )
        return Result(ex.id, "failed", refused, ex.title, (("not an answer", refused),))
    return result


# --------------------------------------------------------------------------
# Persistence: progress.json and records.jsonl in $STEPWISE_HOME
# --------------------------------------------------------------------------


def _home() -> Path:
    env = os.environ.get("STEPWISE_HOME")
    return Path(env) if env else Path(__file__).resolve().parent.parent / ".stepwise"


_folded: list[str] | None = None  # in grading mode: warnings kept for the verdict, not stderr


def _warn(text):
    if _folded is not None:
        _folded.append(text)
        return
    print(f"stepwise: {text}", file=sys.stderr)


@contextlib.contextmanager
def _warnings_folded(on):
    """Issue 15: nbgrader gives 0 to a cell with any stderr, so in grading mode the warnings of a
    check (ours and Python's) are collected and shown in its verdict instead."""
    global _folded
    if not on:
        yield []
        return
    _folded, folded = [], _folded
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield _folded
        _folded.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        _folded, folded = folded, _folded


def _read_progress() -> dict:
    path = _home() / "progress.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")  # noqa: TRY004 (reported like bad JSON)
        return data
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        _warn(f"ignoring unreadable progress file {path.name} ({type(error).__name__})")
        return {}


def _write_atomically(path: Path, text: str):
    """Write a temporary file next to ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_STATUS_IN_PROGRESS = {"passed": "passed", "failed": "failing", "not attempted": "not attempted"}
_RANK = {"not attempted": 0, "failing": 1, "passed": 2}  # progress keeps the best verdict


def _best(old, new):
    """The better of a saved status and a new one (a pass is never lost)."""
    return old if _RANK.get(old, -1) > _RANK[new] else new


def _record(exercise_id, **fields):
    """Issue 15: a record says which exercise, notebook and student (where known), when, and how
    many hints were shown. It is the learner's log: helpers.grade never reads it."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    session = os.environ.get("JPY_SESSION_NAME")  # the notebook's path, set by Jupyter
    return {
        "exercise": exercise_id,
        "notebook": Path(session).name if session else str(exercise_id).split(".")[0],
        "student": os.environ.get("STEPWISE_STUDENT") or None,
        "timestamp": now,
        "hints used": _hints_shown.get(exercise_id, 0),
        **fields,
    }


def _append_record(record):
    home = _home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "records.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _save(result: Result):
    """Append the grading record and update progress. Never raises."""
    record = _record(result.exercise, status=result.status, passed=result.passed, message=result.text())
    now = record["timestamp"]
    try:
        _append_record(record)
        home = _home()
        if result.exercise in _REGISTRY:
            progress_data = _read_progress()
            last = _STATUS_IN_PROGRESS[result.status]
            old = progress_data.get(result.exercise)
            best = _best(old.get("status") if isinstance(old, dict) else None, last)
            progress_data[result.exercise] = {"status": best, "last": last, "updated": now}
            _write_atomically(home / "progress.json", json.dumps(progress_data, indent=1) + "\n")
    except OSError as error:
        _warn(f"could not save progress ({type(error).__name__}: {error.strerror or error})")


# --------------------------------------------------------------------------
# The learner's functions
# --------------------------------------------------------------------------

_latest: dict[str, tuple[object, Result]] = {}  # exercise id -> (candidate, its result)


def _grading_env():
    return os.environ.get("STEPWISE_GRADING", "") not in ("", "0")


def _started_grading():
    """STEPWISE_GRADING as the process was started with (Linux keeps it in /proc/self/environ,
    which os.environ changes do not reach)."""
    try:
        start = Path("/proc/self/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(v.startswith(b"STEPWISE_GRADING=") and v[17:] not in (b"", b"0") for v in start)


# Issue 15: grading mode set when the process started, or when the notebook imports us, stays
# on whatever the notebook does to os.environ.
_GRADING_AT_IMPORT = _grading_env() or _started_grading()


def _grading():
    return _GRADING_AT_IMPORT or _grading_env()


def check(exercise_id, candidate, *, strict=None, timeout=None) -> Result:
    """Check ``candidate`` against exercise ``exercise_id`` and return the verdict.

    Never raises in learner mode. With ``strict=True`` (or env
    ``STEPWISE_GRADING=1``) a verdict other than "passed" raises
    ``AssertionError`` with the same message. ``timeout`` (seconds) defaults
    to env ``STEPWISE_CHECK_TIMEOUT`` or 10. In Jupyter the verdict is shown
    even when the check is not the last line of its cell.
    """
    result = _check(exercise_id, candidate, strict, timeout)
    _show_after_the_cell(result)
    return result


def _check(exercise_id, candidate, strict, timeout) -> Result:
    exercise_id = str(exercise_id)
    with _warnings_folded(_grading()) as folded:
        ex = _find(exercise_id)
        if ex is None:
            result = Result(exercise_id, "failed", _unknown(exercise_id))
        else:
            result = _run(ex, candidate, timeout)
            _latest[exercise_id] = (candidate, result)
        _save(result)
    if folded:  # grading mode: warnings go into the verdict, not to stderr
        result = Result(result.exercise, result.status, result.message, result.title,
                        (*result.details, *(("warning", text) for text in dict.fromkeys(folded))))
    if (_grading() if strict is None else strict) and not result.passed:
        raise AssertionError(str(result))
    return result


_pending: list[Result] = []  # verdicts of this cell's checks, shown after it unless shown already
_shown: set[int] = set()  # ids of the results rendered (as the cell's value, or printed) this cell


def _show_after_the_cell(result):
    """In IPython, display ``result`` after the cell unless the cell shows it itself."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "events"):
        return
    if not getattr(shell, "_stepwise_shows_checks", False):
        shell.events.register("post_run_cell", _show_pending)
        shell._stepwise_shows_checks = True
    _pending.append(result)


def _show_pending(cell=None):
    """post_run_cell hook: display the verdicts the cell computed but did not show."""
    pending, value = list(_pending), getattr(cell, "result", None)
    _pending.clear()
    try:
        from IPython.display import display

        for result in pending:
            if result is not value and id(result) not in _shown:
                display(result)
    finally:
        _shown.clear()


def use(exercise_id, candidate):
    """``candidate`` if it passes exercise ``exercise_id``, otherwise the reference.

    Reuses this kernel's latest check of this very object; else checks quietly.
    """
    exercise_id = str(exercise_id)
    ex = _find(exercise_id)
    if ex is None:
        raise KeyError(_unknown(exercise_id))
    previous = _latest.get(exercise_id)
    if previous is not None and previous[0] is candidate:
        result = previous[1]
    else:
        result = _check(exercise_id, candidate, False, None)
    if result.passed:
        return candidate
    name = getattr(ex.reference, "__name__", "implementation")
    state = "not attempted yet" if result.status == "not attempted" else "not solved yet"
    print(f"using the reference {name}: exercise {exercise_id} is {state}")
    return ex.reference


@dataclass(frozen=True)
class Text:
    """Plain text that also renders as HTML in Jupyter."""

    text: str

    def __str__(self):
        return self.text

    __repr__ = __str__

    def _repr_html_(self):
        return f"<div style='white-space:pre-wrap'>{html.escape(self.text)}</div>"


_hints_shown: dict[str, int] = {}


def hint(exercise_id, n=None) -> Text:
    """The next hint for ``exercise_id`` on each call (the last one repeats); hint ``n`` if given."""
    exercise_id = str(exercise_id)
    ex = _find(exercise_id)
    if ex is None:
        text = _unknown(exercise_id)
        return Text(text[0].upper() + text[1:])
    total = len(ex.hints)
    if n is None:
        n = min(_hints_shown.get(exercise_id, 0) + 1, total)
    elif not 1 <= n <= total:
        return Text(f"Exercise {exercise_id} has hints 1 to {total}.")
    _hints_shown[exercise_id] = max(_hints_shown.get(exercise_id, 0), n)
    try:  # issue 15: hints shown are part of the record
        _append_record(_record(exercise_id, event="hint", hint=n))
    except OSError as error:
        _warn(f"could not save progress ({type(error).__name__}: {error.strerror or error})")
    return Text(f"Hint {n}/{total} for {exercise_id} ({ex.title}): {ex.hints[n - 1]}")


@dataclass(frozen=True)
class Progress:
    """Every exercise of the series with its status; text and HTML table."""

    rows: tuple[tuple[str, str, str], ...]  # (id, title, status), e.g. "passed · last attempt failing"

    def __str__(self):
        width = max((len(title) for _, title, _ in self.rows), default=5)
        lines = [f"{'id':<6}{'exercise':<{width + 2}}status"]
        for exercise_id, title, status in self.rows:
            lines.append(f"{exercise_id:<6}{title:<{width + 2}}{status}")
        done = sum(status.startswith("passed") for _, _, status in self.rows)
        lines.append(f"{done}/{len(self.rows)} passed")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self):
        mark = {"passed": "✅", "failing": "❌", "not attempted": "○"}
        body = "".join(
            f"<tr><td>{html.escape(i)}</td><td style='text-align:left'>{html.escape(t)}</td>"
            f"<td style='text-align:left'>{mark[s.split(' · ')[0]]} {html.escape(s)}</td></tr>"
            for i, t, s in self.rows
        )
        done = sum(s.startswith("passed") for _, _, s in self.rows)
        return (
            "<table><thead><tr><th>id</th><th>exercise</th><th>status</th></tr></thead>"
            f"<tbody>{body}</tbody></table><p>{done}/{len(self.rows)} passed</p>"
        )


def progress() -> Progress:
    """A table of every exercise in the series with your best status, and the last attempt
    where it differs ("passed · last attempt failing")."""
    saved = _read_progress()
    rows = []
    for exercise_id, ex in _exercises().items():
        entry = saved.get(exercise_id) if isinstance(saved.get(exercise_id), dict) else {}
        status, last = entry.get("status"), entry.get("last")
        if status not in ("passed", "failing"):
            status = "not attempted"
        if last in _RANK and last != status:
            status += f" · last attempt {last}"
        rows.append((exercise_id, ex.title, status))
    return Progress(tuple(rows))
