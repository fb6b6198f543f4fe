"""One submission's process: run the student's code cells, then check each exercise in a fork.

Started by :mod:`helpers.grading.run` as a *zygote* that imports torch and ``helpers`` once
(seconds) and then forks one process per submission (milliseconds), on request over a Unix
socket that also carries the submission's pipes. The forked process gets its own session,
limits, working directory, environment and copy of ``helpers`` (its packages' paths point
there), stdout and stderr to a log file, and a pipe (fd ``STEPWISE_GRADE_FD``) to the grader.
Messages are JSON lines:

- ``{"ready": true}`` once torch and ``helpers`` are imported;
- ``{"cell": k}`` before code cell k runs, ``{"cell_error": k, "error": …}`` when it raises;
- ``{"cells_done": true}``; the grader then sends one line on stdin: the nonce that signs
  verdicts, the pristine ``helpers`` directory and the exercises to check;
- ``{"nonce": …, "exercise": …, "status": …, "message": …, "hints": n, "seconds": s}`` per exercise.

The student's code runs with the Python it found; before the checks, every module loaded
before it gets its attributes back (a patched ``torch.allclose`` or ``os.write`` does not reach
the checkers), and each check runs in a child forked for it, single-threaded, killed at its
deadline, importing the checkers afresh from the pristine copy.
"""

import json
import linecache
import os
import resource
import select
import signal
import socket
import sys
import time

VERDICT_EXIT = 57  # a check child that wrote its verdict exits with this code


class _CellTimeout(BaseException):
    pass


def _send(fd, message):
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


# The check machinery: imported afresh from the pristine copy in each check's child.
_CHECKERS = (
    "helpers.checking",
    "helpers.checking_tools",
    "helpers.exercises",
    "helpers.check",
    "helpers.grading",
)


def _is_checker(name):
    return any(name == c or name.startswith(c + ".") for c in _CHECKERS)


def _snapshot():
    """{module: its attributes} for every module loaded now (all of ``helpers`` but the check
    machinery is imported first), and {class: its attributes} for torch's base classes and the
    classes of ``helpers``."""
    import importlib
    import pkgutil

    import torch
    import torch.optim.lr_scheduler

    import helpers

    for info in pkgutil.walk_packages(helpers.__path__, "helpers."):
        if not _is_checker(info.name):
            try:
                importlib.import_module(info.name)
            except Exception:  # noqa: BLE001, S112 (a module the notebook cannot use either)
                continue
    modules, classes = (
        {},
        [
            torch.Tensor,
            torch.nn.Module,
            torch.optim.Optimizer,
            torch.optim.lr_scheduler.LRScheduler,
        ],
    )
    for name, module in list(sys.modules.items()):
        if module is None or name == "__main__" or _is_checker(name):
            continue
        modules[module] = dict(vars(module))
        if name.startswith("helpers"):
            classes += [
                v for v in vars(module).values() if isinstance(v, type) and v.__module__ == name
            ]
    return modules, {cls: dict(vars(cls)) for cls in classes}


def _restore(saved):
    """Undo what the student's code did to the modules and classes loaded before it."""
    modules, classes = saved
    builtins = sys.modules["builtins"]  # first: the rest uses them
    builtins.__dict__.update(modules[builtins])
    for module, attributes in modules.items():
        current = module.__dict__
        for key, value in attributes.items():
            if current.get(key, _MISSING) is not value:
                current[key] = value
    for cls, attributes in classes.items():
        for key in [k for k in vars(cls) if k not in attributes]:
            try:
                delattr(cls, key)
            except (AttributeError, TypeError):
                pass
        for key, value in attributes.items():
            if vars(cls).get(key, _MISSING) is not value:
                try:
                    setattr(cls, key, value)
                except (AttributeError, TypeError):
                    pass


_MISSING = object()


def _take_answers(k, answers_at, namespace, answers):
    """The answers whose check cell comes before cell k, as they are there (a later
    ``x = use("NN.K", x)`` must not replace the student's answer by the reference)."""
    for exercise_id, (position, expression) in answers_at.items():
        if position == k:
            try:
                answers[exercise_id] = eval(expression, namespace)  # noqa: S307
            except Exception:  # noqa: BLE001, S112 (not defined there: looked up at the end)
                continue


def _run_cells(fd, cells, skip, timeout, answers_at, answers):
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}

    def on_alarm(signum, frame):
        raise _CellTimeout

    for k, source in enumerate(cells):
        _take_answers(k, answers_at, namespace, answers)
        if k in skip:
            continue
        _send(fd, {"cell": k})
        filename = f"<ipython-input-{k}-graded>"  # reads "your cell, line N" in verdicts
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            exec(compile(source, filename, "exec"), namespace)  # noqa: S102 (grading runs the student's code)
            error = None
        except _CellTimeout:
            error = f"the cell ran longer than {timeout:g} s and was stopped"
        except BaseException as caught:  # noqa: BLE001 (SystemExit, KeyboardInterrupt: the student's)
            error = f"{type(caught).__name__}: {caught}"[:500]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if error:
            _send(fd, {"cell_error": k, "error": error})
    _take_answers(len(cells), answers_at, namespace, answers)
    return namespace


def _pristine_checking(pristine):
    """Forget the student's check machinery and import the grader's own, from the pristine copy
    (the rest of ``helpers`` was loaded before the student's code and restored since)."""
    import importlib

    for name in [n for n in sys.modules if _is_checker(n)]:
        parent, _, child = name.rpartition(".")
        vars(sys.modules.get(parent, sys)).pop(child, None)  # `from . import x` reads the attribute
        del sys.modules[name]
    helpers = sys.modules["helpers"]
    student_dir = os.path.realpath(helpers.__path__[0]) + os.sep
    helpers.__path__ = [os.path.join(pristine, "helpers")]
    checking = importlib.import_module("helpers.checking")
    # Library code, not the candidate's: the references the notebook imported, and the site
    # directories on PYTHONPATH (the process runs with -S, so sysconfig does not know them).
    site = [
        os.path.realpath(d) + os.sep
        for d in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if d
    ]
    checking._LIBRARY_DIRS += (student_dir, *site, *_ZYGOTE_DIRS)
    return checking


def _check_one(fd, nonce, pristine, item, namespace, hints, answers):
    """In the forked child: check one exercise and write its verdict (never returns)."""
    exercise_id, expression = item["id"], item["candidate"]
    start = time.monotonic()
    for signum in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    sys.settrace(None)
    sys.setprofile(None)
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime) + 1
    limit = spent + int(item["cpu"])
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(
            resource.RLIMIT_CPU, (limit, limit + 1 if hard == resource.RLIM_INFINITY else hard)
        )
    os.environ["STEPWISE_GRADING"] = "1"
    os.environ["STEPWISE_CHECK_TIMEOUT"] = str(item["timeout"])
    os.environ["STEPWISE_HOME"] = os.path.join(os.getcwd(), f".grader-{exercise_id}")
    verdict = {"status": "failed", "message": ""}
    try:
        checking = _pristine_checking(pristine)
        checking._refuse_library = True
        try:
            candidate = (
                answers[exercise_id] if exercise_id in answers else eval(expression, namespace)
            )  # noqa: S307
        except Exception:  # noqa: BLE001
            verdict["message"] = (
                f"your notebook defines no {expression} (the answer to {exercise_id})"
            )
        else:
            result = checking.check(exercise_id, candidate, strict=False)
            verdict = {"status": result.status, "message": str(result)}
    except BaseException as error:  # noqa: BLE001
        verdict = {
            "status": "failed",
            "message": f"the check could not run: {type(error).__name__}: {error}",
        }
    verdict.update(
        nonce=nonce,
        exercise=exercise_id,
        hints=hints.get(exercise_id, 0),
        seconds=round(time.monotonic() - start, 3),
    )
    try:
        _send(fd, verdict)
    finally:
        os._exit(VERDICT_EXIT)


def _death(status, seconds, limit):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGKILL and seconds >= limit:
            return f"timed out: no verdict after {limit:g} s (a loop that never ends, or one in C code)"
        if sig == signal.SIGXCPU or sig == signal.SIGKILL:
            return "stopped: the check used up its CPU time"
        return f"your code crashed the check ({signal.Signals(sig).name})"
    code = os.WEXITSTATUS(status)
    return f"your code ended the check's process (exit code {code}, e.g. os._exit or sys.exit)"


def _check_all(fd, job, namespace, hints, answers):
    for item in job["exercises"]:
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _check_one(fd, job["nonce"], job["pristine"], item, namespace, hints, answers)
        deadline = start + item["wall"]
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.01)
        seconds = time.monotonic() - start
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == VERDICT_EXIT):
            _send(
                fd,
                {
                    "nonce": job["nonce"],
                    "exercise": item["id"],
                    "status": "failed",
                    "message": _death(status, seconds, item["wall"]),
                    "hints": hints.get(item["id"], 0),
                    "seconds": round(seconds, 3),
                },
            )


def main(saved):
    fd = int(os.environ.pop("STEPWISE_GRADE_FD"))
    with open(os.environ.pop("STEPWISE_GRADE_PLAN"), encoding="utf-8") as f:
        plan = json.load(f)
    saved[0][sys.modules[__name__]] = dict(globals())  # this module too, and what main calls next:
    restore, send, check_all, loads = _restore, _send, _check_all, json.loads
    send(fd, {"ready": True})
    answers = {}
    namespace = _run_cells(
        fd, plan["cells"], set(plan["skip"]), plan["cell_timeout"], plan["answers_at"], answers
    )
    restore(saved)
    shown = getattr(sys.modules.get("helpers.checking"), "_hints_shown", None)
    hints = (
        {k: v for k, v in dict(shown).items() if type(k) is str and type(v) is int}
        if type(shown) is dict
        else {}
    )
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    sys.settrace(None)
    sys.setprofile(None)
    send(fd, {"cells_done": True})
    job = loads(sys.stdin.readline())
    check_all(fd, job, namespace, hints, answers)
    os._exit(0)


# --------------------------------------------------------------------------
# The zygote
# --------------------------------------------------------------------------

_ZYGOTE_DIRS = ()  # where the zygote imported helpers from: library code, not the candidate's


def _reap(sock):
    """Tell the grader how each finished submission process ended (its Popen.returncode)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return
        sock.send(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}).encode())


def _become_submission(request, fds, saved):
    """In the forked child: take the submission's pipes, session, limits, directory, environment
    and copy of ``helpers``, then run it (never returns)."""
    try:
        message_fd, stdin_fd, log_fd = fds
        os.setsid()
        for fd, target in ((stdin_fd, 0), (log_fd, 1), (log_fd, 2)):
            os.dup2(fd, target)
        os.close(stdin_fd)
        os.close(log_fd)
        for name, soft, hard in request["limits"]:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"], STEPWISE_GRADE_FD=str(message_fd))
        old, new = _ZYGOTE_DIRS[0], os.path.realpath(request["helpers"]) + os.sep
        sys.path[:] = [request["helpers"] if os.path.realpath(p) + os.sep == old else p for p in sys.path]
        for name, module in list(sys.modules.items()):
            if name.split(".")[0] == "helpers" and hasattr(module, "__path__"):
                module.__path__ = [new + p[len(old):] if p.startswith(old) else p for p in module.__path__]
                if module in saved[0]:
                    saved[0][module]["__path__"] = module.__path__  # what _restore gives back
        main(saved)
    finally:
        os._exit(70)


def serve():
    """The zygote: import everything, then fork a submission process for each request."""
    global _ZYGOTE_DIRS
    sock = socket.socket(fileno=int(os.environ.pop("STEPWISE_ZYGOTE_FD")))
    saved = _snapshot()
    helpers = sys.modules["helpers"]
    _ZYGOTE_DIRS = (os.path.dirname(os.path.realpath(helpers.__path__[0])) + os.sep,)
    sock.send(b'{"ready": true}')
    while True:
        _reap(sock)
        if not select.select([sock], [], [], 0.05)[0]:
            continue
        data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        if not data:
            os._exit(0)  # the grader is done
        pid = os.fork()
        if pid == 0:
            sock.close()
            _become_submission(json.loads(data), fds, saved)
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"pid": pid}).encode())


if __name__ == "__main__":
    serve()
