"""Gradient clipping, drop-in for ``torch.nn.utils``.

    get_total_norm         ‖(‖g_1‖_p, …, ‖g_n‖_p)‖_p: the p-norm of all gradients as one vector
    clip_grads_with_norm_  g ← g · min(1, max_norm / (total + 1e-6)), in place
    clip_grad_norm_        the two above: returns the total norm before clipping
    clip_grad_value_       g ← clamp(g, −clip_value, clip_value), in place

Same names, arguments, defaults and numbers as torch. ``foreach`` is accepted
and ignored: the plain loop is always used (torch's fused kernels give the same
values, up to the order of a float sum).
"""

import types
import warnings

import torch


def _tensors(tensors):
    return [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)


@torch.no_grad()
def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    r"""The p-norm of ``tensors`` seen as one long vector (``norm_type`` p, may be ``inf``).

        total = ‖(‖t_1‖_p, ‖t_2‖_p, …)‖_p        (0 for no tensors)

    Raises ``RuntimeError`` if ``error_if_nonfinite`` and the total is NaN or ±inf.
    """
    tensors = _tensors(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return torch.tensor(0.0)
    norms = [torch.linalg.vector_norm(t, norm_type) for t in tensors]
    total_norm = torch.linalg.vector_norm(torch.stack(norms), norm_type)
    if error_if_nonfinite and not torch.isfinite(total_norm):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from "
            "`parameters` is non-finite, so it cannot be clipped. To disable "
            "this error and scale the gradients by the non-finite norm anyway, "
            "set `error_if_nonfinite=False`"
        )
    return total_norm


@torch.no_grad()
def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    r"""Scale every ``.grad`` in place by min(1, max_norm / (total_norm + 1e-6)); skip ``None`` grads."""
    grads = [p.grad for p in _tensors(parameters) if p.grad is not None]
    if not grads:
        return
    clip_coef = torch.clamp(float(max_norm) / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(clip_coef.to(g.device))


@torch.no_grad()
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    r"""Clip the gradients of ``parameters`` so that their total norm is at most ``max_norm``.

    The norm is taken over all gradients together, as if concatenated into one vector::

        total = ‖(‖g_1‖_p, …, ‖g_n‖_p)‖_p
        g ← g · min(1, max_norm / (total + 1e-6))      for every g that is not None

    Args:
        parameters (Tensor or iterable of Tensors): whose ``.grad`` to clip, in place.
        max_norm (float): largest total norm allowed.
        norm_type (float): p of the p-norm, ``inf`` for the largest |g|. Default: 2.0.
        error_if_nonfinite (bool): raise ``RuntimeError`` if the total is NaN or ±inf
            (otherwise the gradients are scaled by it anyway). Default: False.
        foreach (bool): accepted for compatibility with torch; ignored.

    Returns:
        The total norm before clipping (a 0-dim tensor).
    """
    is_generator = isinstance(parameters, types.GeneratorType)
    parameters = _tensors(parameters)
    if is_generator and not parameters:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total_norm)
    return total_norm


@torch.no_grad()
def clip_grad_value_(parameters, clip_value, foreach=None):
    r"""Clamp every ``.grad`` of ``parameters`` into [−clip_value, clip_value], in place.

    ``None`` grads are skipped; returns None. ``foreach`` is accepted and ignored.
    """
    clip_value = float(clip_value)
    for p in _tensors(parameters):
        if p.grad is not None:
            p.grad.clamp_(min=-clip_value, max=clip_value)
