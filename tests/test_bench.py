"""helpers.bench: the bytes of a step against a count by hand, the model's shapes, and the
benchmark command's table (run with --quick; its times are not asserted, only its shape)."""

import re

import pytest
import torch

import helpers.optim as ours
from helpers import bench

# two param groups: a 3×4 float32 matrix (48 bytes) and a float64 vector of 5 (40 bytes)
A, B = 48, 40


def optimizer_on_two_groups(cls, first, second):
    a = torch.zeros(3, 4, requires_grad=True)
    b = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    unused = torch.zeros(100, requires_grad=True)  # never a gradient: moves nothing
    optimizer = cls([{"params": [a, unused], **first}, {"params": [b], **second}], lr=0.1)
    a.grad, b.grad = torch.ones(3, 4), torch.ones(5, dtype=torch.float64)
    return optimizer


@pytest.mark.parametrize("library", [torch.optim, ours])
@pytest.mark.parametrize(("name", "first", "second", "before", "after"), [
    # plain SGD: read p and g, write p; with momentum, the buffer is written from step 1 and read from step 2
    ("SGD", {}, {"weight_decay": 0.1, "maximize": True}, (2 * A + 2 * B, A + B), (2 * A + 2 * B, A + B)),
    ("SGD", {"momentum": 0.9}, {}, (2 * A + 2 * B, 2 * A + B), (3 * A + 2 * B, 2 * A + B)),
    ("SGD", {"momentum": 0.9, "nesterov": True}, {"momentum": 0.5, "dampening": 0.1},
     (2 * A + 2 * B, 2 * A + 2 * B), (3 * A + 3 * B, 2 * A + 2 * B)),
    # Adam: p, g, m, v read (m and v from step 2), p, m, v written; amsgrad adds v̂
    ("Adam", {}, {"weight_decay": 0.1}, (2 * A + 2 * B, 3 * A + 3 * B), (4 * A + 4 * B, 3 * A + 3 * B)),
    ("Adam", {"amsgrad": True}, {}, (2 * A + 2 * B, 4 * A + 3 * B), (5 * A + 4 * B, 4 * A + 3 * B)),
    ("AdamW", {"amsgrad": True}, {"amsgrad": True, "maximize": True},
     (2 * A + 2 * B, 4 * A + 4 * B), (5 * A + 5 * B, 4 * A + 4 * B)),
], ids=str)
def test_step_traffic_is_the_count_by_hand(library, name, first, second, before, after):
    optimizer = optimizer_on_two_groups(getattr(library, name), first, second)
    assert bench.step_traffic(optimizer) == before
    optimizer.step()
    assert bench.step_traffic(optimizer) == after


def test_a_parameter_without_gradient_moves_nothing():
    optimizer = optimizer_on_two_groups(torch.optim.Adam, {}, {})
    optimizer.param_groups[1]["params"][0].grad = None
    assert bench.step_traffic(optimizer) == (2 * A, 3 * A)


def test_the_model_is_model_shaped():
    shapes = bench.model_shapes()
    numel = sum(torch.Size(s).numel() for s in shapes)
    d = 384  # per layer 12·d² weights + 13·d biases and norms; 8192 + 256 embedding rows; a final norm
    assert numel == 6 * (12 * d * d + 13 * d) + (8192 + 256) * d + 2 * d
    assert len(shapes) == 76 and 10e6 < numel < 15e6


def test_bandwidth_is_measured():
    bw = bench.bandwidth(numel=2**16, repeats=2)
    assert set(bw) == {"copy", "add_"} and all(1e7 < v < 1e13 for v in bw.values())


def test_the_quick_benchmark_prints_the_table(capsys):
    bench.main(["--quick", "--repeats", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("76 float32 tensors, 0.2 M numbers; 1 threads; bandwidth: copy ")
    variants = ["per-parameter", "foreach", "flat", "fused", "roofline"]
    for title, start in (("SGD-momentum", 1), ("Adam", 7)):
        assert lines[start].split() == [title, "ms/step", "×", "fused", "×", "roofline"]
        rows = [line.split() for line in lines[start + 1:start + 6]]
        assert [r[0] for r in rows] == variants
        for _, ms, _, to_roofline in rows:
            assert float(ms) > 0 and re.fullmatch(r"\d+\.\d\d", to_roofline)
        assert rows[3][2] == "1.00" and rows[4][3] == "1.00"
    assert len(lines) == 13
