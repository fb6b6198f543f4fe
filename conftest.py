"""Root pytest hooks: record each notebook's run time under nbval (reported by tools/nbtimes.py)."""

import os
from collections import defaultdict

_seconds = defaultdict(float)


def pytest_runtest_logreport(report):
    if report.fspath.endswith(".ipynb"):
        _seconds[report.fspath] += report.duration  # setup (kernel start) + call + teardown


def pytest_sessionfinish(session):
    path = os.environ.get("NBTIMES")
    if not path or not _seconds or hasattr(session.config, "workerinput"):
        return
    mode = "lax" if session.config.getoption("nbval_lax", False) else "strict"
    with open(path, "a", encoding="utf-8") as f:
        for notebook, seconds in sorted(_seconds.items()):
            f.write(f"{mode}\t{notebook}\t{seconds:.2f}\n")
