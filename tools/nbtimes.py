"""Print the notebook run times recorded by the root conftest.py.

    python tools/nbtimes.py report build/nbtimes.tsv
"""

import sys
from collections import defaultdict
from pathlib import Path

BUDGET = 30.0  # seconds per notebook on 2 CPU cores


def report(path):
    path = Path(path)
    if not path.exists():
        print("no notebook run times recorded")
        return 0
    times = defaultdict(dict)
    for line in path.read_text(encoding="utf-8").splitlines():
        mode, notebook, seconds = line.split("\t")
        times[notebook][mode] = float(seconds)
    print(f"\nNotebook run times (s; budget {BUDGET:.0f} s each)")
    print(f"{'notebook':<44}{'solutions':>10}{'student':>10}")
    over = []
    for name in sorted({Path(n).name for n in times}):
        strict = sum(t.get("strict", 0) for n, t in times.items() if Path(n).name == name)
        lax = sum(t.get("lax", 0) for n, t in times.items() if Path(n).name == name)
        print(f"{name:<44}{strict:>10.1f}{lax:>10.1f}")
        over += [name] if max(strict, lax) > BUDGET else []
    if over:
        print(f"over budget: {', '.join(over)}")
    return 0


if __name__ == "__main__":
    sys.exit(report(sys.argv[2]) if sys.argv[1:2] == ["report"] else 2)
