"""tools/kernel_server.py forks a kernel only when its environment is the server's."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import kernel_server  # noqa: E402

SERVER = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin", "SHLVL": "1", "STEPWISE_HOME": "/a"}


def test_per_kernel_variables_and_shell_bookkeeping_do_not_count():
    kernel = {**SERVER, "SHLVL": "3", "STEPWISE_HOME": "/b", "STEPWISE_NOTEBOOK": "x.ipynb",
              "JPY_PARENT_PID": "42", "PYTEST_XDIST_WORKER": "gw0", "COLUMNS": "80"}
    assert kernel_server._differences(SERVER, kernel) == []


def test_what_torch_reads_at_import_counts_changed_added_or_removed():
    kernel = {**SERVER, "OMP_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "default"}
    del kernel["PATH"]
    assert kernel_server._differences(SERVER, kernel) == ["ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "PATH"]


def test_grading_mode_counts_as_the_kernel_reads_it_from_its_start():
    """helpers.checking reads STEPWISE_GRADING from /proc/self/environ, the server's in a fork."""
    kernel = {**SERVER, "STEPWISE_GRADING": "1"}
    assert kernel_server._differences(SERVER, kernel) == ["STEPWISE_GRADING"]


def test_test_kernels_skip_only_the_tight_crop_of_figures():
    from matplotlib_inline.config import InlineBackend
    from traitlets.config.loader import KVArgParseConfigLoader

    config = KVArgParseConfigLoader(argv=[kernel_server.FIGURES], classes=[InlineBackend]).load_config()
    assert InlineBackend(config=config).print_figure_kwargs == {"bbox_inches": None}
    assert InlineBackend().print_figure_kwargs == {"bbox_inches": "tight"}  # what learners get


def test_a_lax_runs_kernel_draws_no_figures():
    from matplotlib_inline.config import InlineBackend
    from traitlets.config.loader import KVArgParseConfigLoader

    spec = ["-f", "kernel.json", kernel_server.FIGURES]
    assert kernel_server.kernel_argv(spec, {"STEPWISE_FIGURES": "all"}) == spec
    lax = kernel_server.kernel_argv(spec, {"STEPWISE_FIGURES": "none"})
    config = KVArgParseConfigLoader(argv=lax[2:], classes=[InlineBackend]).load_config()
    assert InlineBackend(config=config).figure_formats == set()
