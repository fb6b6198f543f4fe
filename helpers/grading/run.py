"""Grading one submission in its own process, with limits, and collecting its verdicts.

The process (:mod:`helpers.grading.worker`) is forked from a :class:`Zygote` that imported
torch and ``helpers`` once; it runs in a temporary directory with its own copy of ``helpers``,
under CPU, memory and file-size limits, in its own session so that everything it starts is
killed with it. A cell that hangs in C code or ends the process is
skipped on a fresh start (at most ``RESTARTS`` times). Verdicts count only when they carry
the nonce sent once the student's cells are done.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

RESTARTS = 3
STARTUP_SECONDS = 120  # importing torch on a loaded machine
_SITE = tuple(dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")))


@dataclass(frozen=True)
class Limits:
    cell_seconds: float = 30.0  # wall time of one code cell
    check_seconds: float = (
        20.0  # wall time of one exercise's check (the check's own timeout is half)
    )
    memory_mb: int = 3072  # address space of the submission's process
    cpu_seconds: int = 600  # CPU time of the whole submission
    file_mb: int = 64  # largest file the submission may write
    grace_seconds: float = 5.0  # past a deadline, before the process is killed


@dataclass
class Outcome:
    verdicts: dict[str, dict] = field(default_factory=dict)  # exercise id -> verdict
    cell_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def snapshot_tree(root: Path) -> dict[str, bytes]:
    """{relative path: bytes} of the Python files of a package: the grader's pristine copy."""
    return {
        str(p.relative_to(root.parent)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix in (".py", ".json", ".txt", ".csv")
    }


def write_tree(files: dict[str, bytes], where: Path):
    for relative, data in files.items():
        target = where / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _limits(limits: Limits):
    """[(resource name, soft, hard)] for the submission's process."""
    return [
        ("RLIMIT_AS", limits.memory_mb << 20, limits.memory_mb << 20),
        ("RLIMIT_CPU", limits.cpu_seconds, limits.cpu_seconds + 5),
        ("RLIMIT_FSIZE", limits.file_mb << 20, limits.file_mb << 20),
        ("RLIMIT_CORE", 0, 0),
    ]


def _environment(tmp: Path):
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp / "home"),
        "STEPWISE_HOME": str(tmp / "home" / ".stepwise"),
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        # -S below: no .pth files, so the editable install cannot lead the student to the repository
        "PYTHONPATH": os.pathsep.join([str(tmp / "student"), *_SITE]),
    }


class Zygote:
    """The process that imports torch and ``helpers`` once and forks each submission's process
    (:func:`helpers.grading.worker.serve`): seconds of imports paid once, not per submission.
    Its copy of ``helpers`` is removed once imported, so no submission can change it."""

    def __init__(self, helpers_files):
        self.tmp = Path(tempfile.mkdtemp(prefix="stepwise-zygote-"))
        for sub in ("home", "work"):
            (self.tmp / sub).mkdir()
        write_tree(helpers_files, self.tmp / "student")
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**_environment(self.tmp), "STEPWISE_ZYGOTE_FD": str(theirs.fileno())}
        with open(self.tmp / "zygote.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-S", "-s", "-m", "helpers.grading.worker"],
                cwd=self.tmp / "work", env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(theirs.fileno(),), start_new_session=True,
            )
        theirs.close()
        if not select.select([self.sock], [], [], STARTUP_SECONDS)[0] or not self.sock.recv(1 << 16):
            raise RuntimeError(f"the grader's worker did not start; see {self.tmp / 'zygote.log'}")
        shutil.rmtree(self.tmp / "student")
        self.lock, self.changed = threading.Lock(), threading.Condition()
        self.pids: queue.Queue = queue.Queue()
        self.exits: dict[int, int] = {}
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self):
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                self.pids.put(None)
                with self.changed:
                    self.exits[-1] = -1  # the zygote is gone: every process it forked too
                    self.changed.notify_all()
                return
            message = json.loads(data)
            if "pid" in message:
                self.pids.put(message["pid"])
            else:
                with self.changed:
                    self.exits[message["exited"]] = message["code"]
                    self.changed.notify_all()

    def fork(self, request, fds):
        with self.lock:
            socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
            pid = self.pids.get()
        if pid is None:
            raise RuntimeError("the grader's worker ended")
        return _Forked(self, pid)

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        _kill(self.process)
        self.sock.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class _Forked:
    """A submission's process, forked by the zygote: what ``_converse`` needs of a Popen."""

    def __init__(self, zygote, pid):
        self.zygote, self.pid, self.stdin, self.returncode = zygote, pid, None, None

    def wait(self, timeout=30.0):
        if self.returncode is not None:
            return self.returncode
        with self.zygote.changed:
            self.zygote.changed.wait_for(
                lambda: self.pid in self.zygote.exits or -1 in self.zygote.exits, timeout
            )
            self.returncode = self.zygote.exits.pop(self.pid, self.returncode)
        return self.returncode


def _start(zygotes, plan, tmp: Path, limits: Limits):
    """Fork the submission's process. ``zygotes(dead)``: the zygote to fork from, a new one if
    it is ``dead`` (another submission may have killed its parent)."""
    (tmp / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    read, write = os.pipe()
    stdin_read, stdin_write = os.pipe()
    env = {**_environment(tmp), "STEPWISE_GRADE_PLAN": str(tmp / "plan.json")}
    request = {"cwd": str(tmp / "work"), "env": env, "helpers": str(tmp / "student"),
               "limits": _limits(limits)}
    with open(tmp / "output.log", "ab") as log:  # the child's stdout and stderr
        try:
            zygote = zygotes(None)
            try:
                process = zygote.fork(request, [write, stdin_read, log.fileno()])
            except (OSError, RuntimeError):
                process = zygotes(zygote).fork(request, [write, stdin_read, log.fileno()])
        finally:
            os.close(write)
            os.close(stdin_read)
    process.stdin = os.fdopen(stdin_write, "wb")
    return process, read


def _kill(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()


class _Lines:
    """JSON lines from a pipe, with a deadline on each read."""

    def __init__(self, fd):
        self.fd, self.buffer, self.closed = fd, b"", False

    def next(self, deadline):
        while b"\n" not in self.buffer:
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return "timeout"
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.closed = True
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            return {}
        return message if isinstance(message, dict) else {}


def grade_submission(zygotes, cells, exercises, helpers_files, limits: Limits, checked_at=None) -> Outcome:
    """Run ``cells`` and check ``exercises`` [(id, candidate expression)] in a process forked by
    a zygote (see ``_start``); ``checked_at``: {id: how many cells run before the answer is
    taken} (default: all)."""
    checked_at = checked_at or {}
    answers_at = {i: (checked_at[i], e) for i, e in exercises if i in checked_at}
    start = time.monotonic()
    outcome = Outcome()
    skip: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="stepwise-grade-") as name:
        tmp = Path(name)
        for attempt in range(RESTARTS + 1):
            for sub in ("work", "home", "student"):
                shutil.rmtree(tmp / sub, ignore_errors=True)
                (tmp / sub).mkdir()
            write_tree(helpers_files, tmp / "student")
            plan = {
                "cells": cells,
                "skip": sorted(skip),
                "cell_timeout": limits.cell_seconds,
                "answers_at": answers_at,
            }
            process, fd = _start(zygotes, plan, tmp, limits)
            try:
                stuck = _converse(process, fd, tmp, exercises, helpers_files, limits, outcome, skip)
            finally:
                _kill(process)
                os.close(fd)
            if stuck is None or attempt == RESTARTS:
                break
            skip.add(stuck)
            outcome.cell_errors = [
                e for e in outcome.cell_errors if not e.startswith(f"cell {stuck + 1}:")
            ]
            outcome.cell_errors.append(f"cell {stuck + 1}: {stuck_reason(process)}; it was skipped")
    outcome.seconds = time.monotonic() - start
    return outcome


def stuck_reason(process):
    code = process.returncode
    if code is not None and code < 0 and code != -signal.SIGKILL:
        return f"it crashed the process ({signal.Signals(-code).name})"
    if code is not None and code >= 0:
        return f"it ended the process (exit code {code})"
    return "it hung (or a loop in C code ignored the time limit)"


def _converse(process, fd, tmp, exercises, helpers_files, limits, outcome, skip):
    """Follow one run; return the index of the cell that hung or killed the process, else None."""
    lines = _Lines(fd)
    cell = None
    grace = limits.grace_seconds
    if lines.next(time.monotonic() + STARTUP_SECONDS) in ("timeout", None):
        return None  # no verdicts: the grader's own start failed (see output.log)
    while True:  # the student's cells
        message = lines.next(time.monotonic() + limits.cell_seconds + grace)
        if message == "timeout" or message is None:
            if message is None:
                process.wait()
            return cell if cell is not None else None
        if "cell" in message:
            cell = message["cell"]
        elif "cell_error" in message:
            outcome.cell_errors.append(
                f"cell {int(message['cell_error']) + 1}: {str(message.get('error'))[:300]}"
            )
        elif message.get("cells_done"):
            break
    nonce = secrets.token_hex(16)
    pristine = tmp / f"pristine-{secrets.token_hex(8)}"  # written now, after the student's code ran
    write_tree(helpers_files, pristine)
    check_timeout = limits.check_seconds / 2
    job = {
        "nonce": nonce,
        "pristine": str(pristine),
        "exercises": [
            {
                "id": i,
                "candidate": e,
                "timeout": check_timeout,
                "wall": limits.check_seconds,
                "cpu": limits.check_seconds * 2,
            }
            for i, e in exercises
        ],
    }
    try:
        process.stdin.write((json.dumps(job) + "\n").encode())
        process.stdin.flush()
    except OSError:
        return None
    deadline = time.monotonic() + len(exercises) * (limits.check_seconds + grace) + grace
    wanted = {i for i, _ in exercises}
    while wanted - outcome.verdicts.keys():
        message = lines.next(deadline)
        if message in ("timeout", None):
            return None
        exercise_id = message.get("exercise")
        if (
            message.get("nonce") == nonce
            and exercise_id in wanted
            and exercise_id not in outcome.verdicts
        ):
            outcome.verdicts[exercise_id] = message
    return None
