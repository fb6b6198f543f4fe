"""How much memory an optimizer's state takes, measured from its ``state_dict()``.

``state_bytes(optimizer)`` adds up the bytes of every tensor in ``state_dict()["state"]``
(momentum buffers, moments, step counters; plain numbers and ``None`` take no tensor memory);
``bytes_per_parameter(optimizer)`` divides by the number of parameter elements the optimizer
steps. SGD without momentum: 0; with momentum: 4 (one float32 buffer); Adam: 8 (two moments),
plus a 4-byte step counter per tensor.
"""

import torch


def state_bytes(optimizer):
    """Bytes of the tensors in ``optimizer.state_dict()["state"]`` (of a sharded DTensor, the
    local shard: what this process holds)."""
    return sum(_local(value).numel() * value.element_size()
               for per_parameter in optimizer.state_dict()["state"].values()
               for value in per_parameter.values() if isinstance(value, torch.Tensor))


def _local(tensor):
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def parameter_count(optimizer):
    """Number of parameter elements in the optimizer's param groups."""
    return sum(p.numel() for group in optimizer.param_groups for p in group["params"])


def bytes_per_parameter(optimizer):
    """Bytes of optimizer state per parameter element (a float)."""
    return state_bytes(optimizer) / parameter_count(optimizer)
