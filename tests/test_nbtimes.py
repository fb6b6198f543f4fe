"""tools/nbtimes.py: the timing table make test prints."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("nbtimes", ROOT / "tools" / "nbtimes.py")
nbtimes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbtimes)


def test_the_table_sums_each_notebook_and_names_what_is_over_budget(tmp_path, capsys):
    path = tmp_path / "times.tsv"
    path.write_text(
        "strict\tsolutions/05_a.ipynb\t11.0\n"
        "lax\tnotebooks/05_a.ipynb\t4.0\n"
        "strict\tsolutions/13_optimizers_at_scale.ipynb\t14.0\n"  # its own budget: 15 s
        "check\t05.1\t0.7\n"
        "check\t05.2\t0.1\n"
        "test\ttests/test_x.py::test_a\t2.0\n"
        "test\ttests/test_x.py::test_b\t1.0\n",
        encoding="utf-8",
    )
    assert nbtimes.report(path) == 0
    out = capsys.readouterr().out
    assert "05_a.ipynb" in out and "11.0       4.0" in out
    assert "over budget: 05_a.ipynb\n" in out
    assert "Checks: 2 check cells of solutions/, 0.8 s" in out and "05.1 0.70, 05.2 0.10" in out
    assert "over budget: 05.1\n" in out
    assert "Unit tests: 2 tests, 3.0 s" in out and out.index("test_a") < out.index("test_b")


def test_no_file_no_table(tmp_path, capsys):
    assert nbtimes.report(tmp_path / "missing.tsv") == 0
    assert capsys.readouterr().out == "no run times recorded\n"
