"""Recommended nbgrader settings for Stepwise (copy this folder, or run nbgrader here).

    mkdir -p source/stepwise && cp ../solutions/03_your_own_optimizer.ipynb source/stepwise/
    nbgrader generate_assignment stepwise     # hand out release/stepwise/, never ../notebooks/
    nbgrader collect stepwise                 # or put files in submitted/STUDENT/stepwise/
    nbgrader autograde stepwise --create
    nbgrader export                           # grades.csv

Autograding turns Stepwise's grading mode on (a failing check raises, and every check also
runs the grader's hidden cases); the kernel is the project's Python. See README, "For
instructors", for what this path cannot stop and ``python -m helpers.grade`` does.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
VENV_BIN = PROJECT / ".venv" / "bin"

c = get_config()  # noqa: F821 (provided by nbgrader)
c.CourseDirectory.course_id = "stepwise"
c.CourseDirectory.root = str(HERE)

# The kernel nbgrader starts must be the project's Python ("python3" is installed in .venv with
# a relative "python": .venv/bin first on PATH) and must find the helpers package.
os.environ["PATH"] = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

if sys.argv[1:2] == ["autograde"]:
    os.environ["STEPWISE_GRADING"] = "1"  # checks raise on failure and run the hidden cases
    os.environ.setdefault("STEPWISE_CHECK_TIMEOUT", "20")
    os.environ["STEPWISE_HOME"] = str(HERE / ".stepwise-autograde")  # records of no student's

c.Execute.timeout = 120  # seconds per cell; a notebook runs in well under 10 s
c.Execute.interrupt_on_timeout = True
