"""Root pytest hooks: the notebooks run by nbval, and the run times make test reports.

- ``--stepwise-notebooks`` collects solutions/ strict (stored outputs must match) and notebooks/
  lax (must run), so make test runs them and tests/ in one session spread over the cores;
  without it, nbval's own ``--nbval`` / ``--nbval-lax`` apply as usual.
- Each notebook's kernel gets a fresh, empty STEPWISE_HOME (progress, records), so what
  progress() prints never depends on which notebooks ran before it. A kernel of a lax run draws
  no figures (STEPWISE_FIGURES=none): nothing of it is compared, and solutions/ draws them all.
- Every test file's and notebook's run time is appended to $NBTIMES (tools/nbtimes.py reports
  them), and so is each check's: its cell in solutions/, ``check("NN.K", answer)``, a right
  answer. The previous run's, in $NBTIMES_PREVIOUS, puts the longest first, so that the two
  workers finish together.
"""

import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from nbval.plugin import IPyNbFile

_seconds = defaultdict(float)
_check_seconds = {}  # exercise id: its check cell's run time
_check_cell = re.compile(r'check\("(\d\d\.\d+)", [^()]*\)\s*$')  # a cell that only checks


def pytest_addoption(parser):
    parser.addoption(
        "--stepwise-notebooks",
        action="store_true",
        help="run solutions/*.ipynb under strict nbval and notebooks/*.ipynb under nbval-lax",
    )


def _strict(path):
    return Path(path).parent.name == "solutions"


def pytest_collect_file(file_path, parent):
    config = parent.config
    if file_path.suffix != ".ipynb" or not config.getoption("stepwise_notebooks"):
        return None
    if config.option.nbval or config.option.nbval_lax:
        raise pytest.UsageError("--stepwise-notebooks decides strict or lax itself: drop --nbval(-lax)")
    notebook = IPyNbFile.from_parent(parent, path=file_path)
    notebook.compare_outputs = _strict(file_path)  # what --nbval sets; --nbval-lax clears it
    return notebook


def _previous_seconds():
    path = os.environ.get("NBTIMES_PREVIOUS")
    seconds = defaultdict(float)
    if path and os.path.exists(path):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            kind, name, value = line.split("\t")
            seconds[name.split("::")[0]] += float(value)
    return seconds


def pytest_collection_modifyitems(session, config, items):
    """Longest file first by the previous run (new files first of all), for --dist loadfile."""
    previous = _previous_seconds()
    if previous:
        items.sort(key=lambda item: -previous.get(item.nodeid.split("::")[0], float("inf")))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Runs before nbval starts the notebook's kernel, which inherits this environment."""
    if item.fspath.ext == ".ipynb" and os.environ.get("STEPWISE_NOTEBOOK") != str(item.fspath):
        os.environ["STEPWISE_NOTEBOOK"] = str(item.fspath)
        os.environ["STEPWISE_HOME"] = tempfile.mkdtemp(prefix="stepwise-home-")
        # nothing of a lax run is compared: its kernel draws no figures (tools/kernel_server.py)
        os.environ["STEPWISE_FIGURES"] = "all" if item.parent.compare_outputs else "none"


def pytest_itemcollected(item):
    cell = getattr(item, "cell", None)  # nbval's cells
    match = cell is not None and _strict(item.fspath) and _check_cell.match(cell.get("source", ""))
    if match:
        item.user_properties.append(("check", match[1]))  # reaches the report on the controller


def pytest_runtest_logreport(report):
    _seconds[report.nodeid] += report.duration  # setup (a notebook's kernel start) + call + teardown
    if report.when == "call":
        _check_seconds.update({exercise: report.duration
                               for key, exercise in report.user_properties if key == "check"})


def pytest_sessionfinish(session):
    path = os.environ.get("NBTIMES")
    if not path or not _seconds or hasattr(session.config, "workerinput"):
        return
    by_folder, lax = session.config.getoption("stepwise_notebooks"), session.config.option.nbval_lax
    rows = defaultdict(float, {("check", exercise): seconds for exercise, seconds in _check_seconds.items()})
    for nodeid, seconds in _seconds.items():
        name = nodeid.split("::")[0]
        if name.endswith(".ipynb"):
            rows["strict" if (_strict(name) if by_folder else not lax) else "lax", name] += seconds
        else:
            rows["test", nodeid] += seconds
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(f"{kind}\t{name}\t{seconds:.3f}\n" for (kind, name), seconds in sorted(rows.items()))
