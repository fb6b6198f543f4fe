"""Flat optimizers: each param group packed into one buffer, stepped as one tensor.

``flatten_(tensors)`` copies tensors into one new 1-d buffer and makes each of them a
view into it. :class:`FlatSGD` and :class:`FlatAdam` do that, on their first step, with
each param group's parameters, their gradients and their state, and then run the
multi-tensor update of ``helpers.optim`` on lists of one tensor: a handful of kernels
per group, however many parameters it holds. The numbers are those of
``helpers.optim.SGD``/``Adam`` (elementwise updates do not care how the elements are
laid out); the parameters stay the same tensor objects, their ``.data`` now views.

A group is stepped whole: every parameter has a gradient, or none has (the group is
skipped). A gradient handed in as a new tensor is copied into the buffer once, and
``p.grad`` becomes the view, so a ``backward()`` after ``zero_grad(set_to_none=False)``
writes straight into the buffer.
"""

import torch

from .adam import Adam, AdamW, _multi_tensor_adam
from .sgd import SGD, _multi_tensor_sgd


def flatten_(tensors):
    """Copy ``tensors`` into one new 1-d buffer, in order, and rebind each tensor's ``.data``
    to its slice of it (same objects, same shapes and values). Returns the buffer."""
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    for t, view in zip(tensors, _views(flat, tensors)):
        t.data = view
    return flat


def _views(flat, like):
    """Consecutive views of ``flat`` shaped like the tensors of ``like``."""
    views, offset = [], 0
    for t in like:
        views.append(flat[offset:offset + t.numel()].view(t.shape))
        offset += t.numel()
    return views


class _Packed:
    """One param group's buffers: the parameters, the gradients and the state by key."""

    def __init__(self, params):
        self.params = params
        self.param = flatten_(params)
        self.grad = torch.zeros_like(self.param)
        self.grads = _views(self.grad, params)
        self.state = {}

    def gather_grads(self):
        """Copy each gradient that is not yet its view of the buffer in, then rebind p.grad."""
        stale = [(p, view) for p, view in zip(self.params, self.grads) if p.grad is not view]
        if stale:
            torch._foreach_copy_([v for _, v in stale], [p.grad for p, _ in stale])
            for p, view in stale:
                p.grad = view

    def add(self, states, key, flat):
        """Keep ``flat`` as state[key] of the group: each parameter's state holds its view."""
        self.state[key] = flat
        for p, view in zip(self.params, _views(flat, self.params)):
            states[p][key] = view

    def share(self, states, key, value):
        """One value (a step count) held by the state of every parameter of the group."""
        self.state[key] = value
        for p in self.params:
            states[p][key] = value


class _Flat:
    """A flat version of an optimizer: subclasses name the per-element state keys
    (``_shaped``) and write ``_update(group, packed)``."""

    _shaped = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._packed = {}  # id(group): (group, _Packed)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        self._packed = {}  # the loaded state is packed again on the next step

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one update; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            missing = [i for i, p in enumerate(group["params"]) if p.grad is None]
            if len(missing) == len(group["params"]):
                continue
            if missing:
                raise ValueError(f"{type(self).__name__} steps a param group as one tensor: parameter "
                                 f"{missing[0]} of the group has no gradient while others have one")
            packed = self._pack(group)
            packed.gather_grads()
            self._update(group, packed)
        return loss

    def _pack(self, group):
        """The group's buffers, made on its first step (and after load_state_dict)."""
        if id(group) in self._packed:
            return self._packed[id(group)][1]
        params = group["params"]
        if len({(p.dtype, p.device) for p in params}) > 1:
            raise ValueError(f"{type(self).__name__}: the parameters of a param group must share "
                             "one dtype and device")
        packed = _Packed(params)
        loaded = self.state.get(params[0], {})
        for key, value in loaded.items():  # a loaded state: packed like the parameters
            if key in self._shaped:
                packed.add(self.state, key, flatten_([self.state[p][key] for p in params]))
            else:
                packed.share(self.state, key, value)
        self._packed[id(group)] = (group, packed)
        return packed


class FlatSGD(_Flat, SGD):
    """:class:`~helpers.optim.SGD` on one flat buffer per param group (arguments as SGD's)."""

    _shaped = ("momentum_buffer",)

    def _update(self, group, packed):
        first = "momentum_buffer" not in packed.state
        buffers = [packed.state.get("momentum_buffer")] if group["momentum"] else []
        buffers = _multi_tensor_sgd(
            [packed.param], [packed.grad], buffers,
            **{k: group[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")},
        )
        if buffers and first:
            packed.add(self.state, "momentum_buffer", buffers[0])


class FlatAdam(_Flat, Adam):
    """:class:`~helpers.optim.Adam` on one flat buffer per param group (arguments as Adam's)."""

    _shaped = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def _update(self, group, packed):
        if not packed.state:  # the first step: zero moments, one step count for the group
            packed.share(self.state, "step", torch.tensor(0.0))
            for key in self._shaped[: 3 if group["amsgrad"] else 2]:
                packed.add(self.state, key, torch.zeros_like(packed.param))
        s = packed.state
        _multi_tensor_adam(
            [packed.param], [packed.grad], [s["exp_avg"]], [s["exp_avg_sq"]],
            [s["max_exp_avg_sq"]] if group["amsgrad"] else [], [s["step"]],
            **{k: group[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize",
                                     "decoupled_weight_decay")},
        )


class FlatAdamW(_Flat, AdamW):
    """:class:`~helpers.optim.AdamW` on one flat buffer per param group (arguments as AdamW's)."""

    _shaped, _update = FlatAdam._shaped, FlatAdam._update
