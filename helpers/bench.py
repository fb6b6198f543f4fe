"""What an optimizer step costs: the bytes it moves, the fastest it can be, how fast it is.

An optimizer step is elementwise: it reads each parameter, its gradient and its state
once and writes the parameter and the state back, with a few flops per element. On a
CPU (and a GPU) that is limited by memory bandwidth, not arithmetic, so

    roofline time = (bytes read + bytes written) / bandwidth

is the fastest a step can be. ``step_traffic`` counts the bytes, ``bandwidth`` measures
the machine's copy and in-place add bandwidth (the fastest of a few runs), ``benchmark``
times the ways to run SGD-momentum and Adam against it. ``python -m helpers.bench`` prints
the table (``--quick``: a small model, no torch.compile).
"""

import argparse
import statistics
import time

import torch

import helpers.optim as ours
from helpers.optim import flat

# state tensors of a parameter's size, per optimizer: (read, written) per element, on top
# of the parameter (read and written) and its gradient (read)
_TRAFFIC = {"sgd": (0, 0), "momentum": (1, 1), "adam": (2, 2), "amsgrad": (3, 3)}


def step_traffic(optimizer):
    """(bytes read, bytes written) by ``optimizer``'s next step, if every tensor it needs is
    read once and every tensor it changes or creates is written once (a fused step).

    Per element of a parameter with a gradient: the parameter is read and written, the
    gradient read; SGD with momentum reads the momentum buffer (once it exists) and writes
    it; Adam and AdamW read and write m and v (once they exist), amsgrad also v̂. Weight
    decay, Nesterov, dampening and maximize move no extra bytes; step counters are ignored.
    Works for torch's and helpers' SGD, Adam and AdamW.
    """
    read = written = 0
    for group in optimizer.param_groups:
        if "momentum" in group:
            kind = "momentum" if group["momentum"] else "sgd"
        else:
            kind = "amsgrad" if group["amsgrad"] else "adam"
        extra = _TRAFFIC[kind][0]
        for p in group["params"]:
            if p.grad is None:
                continue
            has_state = bool(optimizer.state.get(p))
            size = p.numel() * p.element_size()
            read += (2 + (extra if has_state else 0)) * size
            written += (1 + extra) * size
    return read, written


def model_shapes(width=384, layers=6, vocab=8192, context=256):
    """The parameter shapes of a small GPT-like transformer: 76 tensors, 13.9 M numbers
    with the defaults (embeddings, per layer 2 norms, attention and MLP weights and biases)."""
    shapes = [(vocab, width), (context, width)]
    for _ in range(layers):
        shapes += [(width,), (width,), (3 * width, width), (3 * width,), (width, width), (width,),
                   (width,), (width,), (4 * width, width), (4 * width,), (width, 4 * width), (width,)]
    return shapes + [(width,), (width,)]


def model_params(shapes, seed=0, dtype=torch.float32):
    """Seeded parameters of the given shapes, each with a gradient."""
    generator = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=generator, dtype=dtype).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator, dtype=dtype)
    return params


def _times(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_time(fn, repeats=5, warmup=1):
    """The median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` calls."""
    return statistics.median(_times(fn, repeats, warmup))


def fastest_time(fn, repeats=5, warmup=1):
    """The fastest of ``repeats`` calls of ``fn()``: what the machine can do when nothing interferes."""
    return min(_times(fn, repeats, warmup))


def bandwidth(numel=2**23, repeats=5):
    """{"copy": bytes/s, "add_": bytes/s} on float32 tensors of ``numel`` elements:
    ``b.copy_(a)`` reads a and writes b (8 bytes per element), ``a.add_(b)`` reads a and b
    and writes a (12 bytes), in place like an optimizer step. (A copy also has to fetch the
    memory it overwrites, bytes it moves but we do not count: it comes out slower.)"""
    a, b = torch.ones(numel), torch.ones(numel)
    copy = fastest_time(lambda: b.copy_(a), repeats)
    add = fastest_time(lambda: a.add_(b), repeats)
    return {"copy": 8 * numel / copy, "add_": 12 * numel / add}


VARIANTS = {  # name: the step function of an optimizer ("SGD" or "Adam") on params
    "per-parameter": lambda name, params, kw: getattr(ours, name)(params, **kw).step,
    "foreach": lambda name, params, kw: getattr(torch.optim, name)(params, foreach=True, **kw).step,
    "flat": lambda name, params, kw: getattr(flat, "Flat" + name)(params, **kw).step,
    "fused": lambda name, params, kw: getattr(torch.optim, name)(params, fused=True, **kw).step,
    "compiled": lambda name, params, kw: torch.compile(
        getattr(torch.optim, name)(params, foreach=True, **kw).step),
}
SETTINGS = {"SGD-momentum": ("SGD", {"lr": 1e-3, "momentum": 0.9}), "Adam": ("Adam", {"lr": 1e-3})}


def benchmark(shapes, *, repeats=5, compiled=True):
    """({optimizer: {variant: median seconds per step, "roofline": seconds}}, bandwidth) on
    parameters of ``shapes``. Each variant takes two warm-up steps first (they create the
    state and, for torch.compile, compile); the roofline uses the faster bandwidth."""
    bw = bandwidth(repeats=repeats)
    results = {}
    for label, (name, settings) in SETTINGS.items():
        times = {}
        for variant, make in VARIANTS.items():
            if variant != "compiled" or compiled:
                times[variant] = median_time(make(name, model_params(shapes), settings), repeats, warmup=2)
        optimizer = getattr(ours, name)(model_params(shapes), **settings)
        optimizer.step()  # the state exists: a step in the steady state
        times["roofline"] = sum(step_traffic(optimizer)) / max(bw.values())
        results[label] = times
    return results, bw


RECORDED_NOTE = ("python -m helpers.bench --repeats 9 on the course's machine: 2 cores shared with other "
                 "jobs (load average 5-6), one thread; 76 float32 tensors, 13.9 M numbers; bandwidth: "
                 "copy 2.9 GB/s, add_ 14.2 GB/s")
RECORDED = {  # seconds per step (median of 9), from that run
    "SGD-momentum": {"per-parameter": 0.06328, "foreach": 0.07541, "flat": 0.07543, "fused": 0.04484,
                     "compiled": 0.03278, "roofline": 0.01960},
    "Adam": {"per-parameter": 0.18379, "foreach": 0.12722, "flat": 0.19355, "fused": 0.04485,
             "compiled": 0.04793, "roofline": 0.02744},
}


def table(results):
    """The results as text: each variant's median ms, and its ratio to fused and to the roofline."""
    lines = []
    for name, times in results.items():
        lines.append(f"{name:14s} {'ms/step':>9s} {'× fused':>8s} {'× roofline':>11s}")
        for variant, seconds in times.items():
            lines.append(f"  {variant:12s} {1e3 * seconds:9.2f} {seconds / times['fused']:8.2f} "
                         f"{seconds / times['roofline']:11.2f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a small model (76 tensors, 0.2 M numbers), 3 repeats, no torch.compile")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per variant (default 7)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile'd step")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: stable figures on a shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = model_shapes(width=48, vocab=1024) if args.quick else model_shapes()
    repeats = args.repeats or (3 if args.quick else 7)
    results, bw = benchmark(shapes, repeats=repeats, compiled=not (args.quick or args.no_compile))
    numel = sum(torch.Size(s).numel() for s in shapes)
    print(f"{len(shapes)} float32 tensors, {numel / 1e6:.1f} M numbers; {torch.get_num_threads()} threads; "
          f"bandwidth: copy {bw['copy'] / 1e9:.1f} GB/s, add_ {bw['add_'] / 1e9:.1f} GB/s; "
          f"median of {repeats} steps")
    print(table(results))


if __name__ == "__main__":
    main()
