"""Print the run times recorded by the root conftest.py: each notebook, the checks, the unit tests.

    python tools/nbtimes.py report build/nbtimes.tsv

Seconds are each test's setup + call + teardown on its worker (a notebook's include its
kernel start), so they add up to worker time, not to the wall time of the run. A check's is
the run of its cell in solutions/ (a right answer, checked as a learner's).
"""

import sys
from collections import defaultdict
from pathlib import Path

BUDGET = 10.0  # seconds per notebook run, on one of two cores
BUDGETS = {"13_optimizers_at_scale.ipynb": 15.0}  # its two-process runs start processes
CHECK_BUDGET = 0.5  # seconds per check
SLOWEST = 5


def _seconds(times, kind):
    return f"{times[kind]:>10.1f}" if times.get(kind) else f"{'-':>10}"


def report(path):
    path = Path(path)
    if not path.exists():
        print("no run times recorded")
        return 0
    notebooks, tests, checks = defaultdict(lambda: defaultdict(float)), {}, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        kind, name, seconds = line.split("\t")
        if kind == "test":
            tests[name] = float(seconds)
        elif kind == "check":
            checks[name] = float(seconds)
        else:
            notebooks[Path(name).name][kind] += float(seconds)
    if notebooks:
        print(f"\nNotebook run times (s; budget {BUDGET:.0f} s each, 13: 15 s)")
        print(f"{'notebook':<44}{'solutions':>10}{'student':>10}")
        for name, t in sorted(notebooks.items()):
            print(f"{name:<44}{_seconds(t, 'strict')}{_seconds(t, 'lax')}")
        total = {kind: sum(t[kind] for t in notebooks.values() if kind in t) for kind in ("strict", "lax")}
        print(f"{'total':<44}{_seconds(total, 'strict')}{_seconds(total, 'lax')}")
        over = [name for name, t in sorted(notebooks.items()) if max(t.values()) > BUDGETS.get(name, BUDGET)]
        if over:
            print(f"over budget: {', '.join(over)}")
    if checks:
        slowest = sorted(checks.items(), key=lambda kv: -kv[1])[:SLOWEST]
        print(f"\nChecks: {len(checks)} check cells of solutions/, {sum(checks.values()):.1f} s; the "
              f"{SLOWEST} slowest (budget {CHECK_BUDGET} s each): "
              + ", ".join(f"{name} {seconds:.2f}" for name, seconds in slowest))
        over = sorted(name for name, seconds in checks.items() if seconds > CHECK_BUDGET)
        if over:
            print(f"over budget: {', '.join(over)}")
    if tests:
        print(f"\nUnit tests: {len(tests)} tests, {sum(tests.values()):.1f} s; the {SLOWEST} slowest:")
        for name, seconds in sorted(tests.items(), key=lambda kv: -kv[1])[:SLOWEST]:
            print(f"{seconds:>8.2f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(report(sys.argv[2]) if sys.argv[1:2] == ["report"] else 2)
