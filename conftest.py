"""Root pytest hooks for the notebooks run by nbval.

- Each notebook's kernel gets a fresh, empty STEPWISE_HOME (progress, records), so what
  progress() prints never depends on which notebooks ran before it.
- Each notebook's run time is recorded in $NBTIMES (reported by tools/nbtimes.py).
"""

import os
import tempfile
from collections import defaultdict

import pytest

_seconds = defaultdict(float)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Runs before nbval starts the notebook's kernel, which inherits this environment."""
    if item.fspath.ext == ".ipynb" and os.environ.get("STEPWISE_NOTEBOOK") != str(item.fspath):
        os.environ["STEPWISE_NOTEBOOK"] = str(item.fspath)
        os.environ["STEPWISE_HOME"] = tempfile.mkdtemp(prefix="stepwise-home-")


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
