"""Param groups: what notebook 08 builds. Each function returns or changes the
``param_groups`` of a ``torch.optim`` optimizer.

A param group is a dict: ``"params"`` (a list of tensors) plus any
hyperparameters of its own; every hyperparameter it leaves out falls back to
the optimizer's ``defaults`` (the constructor's keyword arguments)::

    torch.optim.AdamW(decay_groups(model, 0.1), lr=3e-4)
    torch.optim.AdamW(layerwise_lr_groups(model.layers, 3e-4, 0.8))
    unfreeze(optimizer, scheduler, model.layers[0].parameters(), lr=1e-4)
"""

from torch import nn

# Layers whose parameters are all scales and shifts of normalised activations.
NORMS = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
)


def decay_groups(model, weight_decay):
    """Two param groups: weight decay for the weight matrices, none for the rest.

    Decayed: the weights of ``Linear``, ``Conv*``, ``Embedding`` (and
    ``MultiheadAttention``'s ``in_proj_weight``), i.e. every parameter that is
    neither a bias nor part of a normalisation layer (:data:`NORMS`). Not
    decayed: every parameter whose name ends in ``bias`` and every parameter of a
    normalisation layer. Decay would pull a LayerNorm gain towards 0 and a bias
    towards 0 for no benefit: neither adds capacity to overfit with. (On
    ordinary layers this is the same split as nanoGPT's ``p.dim() >= 2``.)

    Args:
        model (nn.Module): the model; a parameter shared by two modules (tied
            weights) is counted once, as in ``model.parameters()``.
        weight_decay (float): the decay of the first group.

    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay},
        {"params": not_decayed, "weight_decay": 0.0}]``, each list in
        ``model.parameters()`` order (a checkpoint's optimizer state is matched to
        the parameters by that order).
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if p in seen:  # tied: already placed under its first owner
                continue
            seen.add(p)
            if name.endswith("bias") or isinstance(module, NORMS):
                no_decay.append(p)
            else:
                decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def layerwise_lr_groups(blocks, lr, decay):
    """One param group per block, the lr shrinking by ``decay`` per block below the top.

    Layer-wise lr decay (LLRD; Clark et al. 2020, ELECTRA; used to fine-tune BERT
    and ViT): block ``i`` of ``N`` gets

        lr_i = lr · decay^(N − 1 − i)

    so the top block (closest to the output) trains with ``lr`` and the input
    block with ``lr · decay^(N − 1)``.

    Args:
        blocks (sequence of nn.Module): from the input (index 0) to the output
            (index N − 1), e.g. ``[model.embed, *model.layers, model.head]``.
        lr (float): the top block's lr.
        decay (float): the factor per block, usually 0.5–0.95.

    Returns:
        ``[{"params": [...], "lr": lr_i}, …]``, one group per block, in order.
    """
    n = len(blocks)
    return [{"params": list(block.parameters()), "lr": lr * decay ** (n - 1 - i)}
            for i, block in enumerate(blocks)]


def unfreeze(optimizer, scheduler, params, lr):
    """Start training frozen ``params`` mid-run, in a new param group of base lr ``lr``.

    From now on the new group is scheduled exactly as if it had been in the
    optimizer from the start with ``lr``: it gets the schedule's current factor
    now, and the scheduler knows its base lr (``base_lrs``) and, for ``LambdaLR``
    and ``MultiplicativeLR``, its lambda. The group also carries ``initial_lr``,
    as every group under a scheduler does (a resume reads it).

    Works for schedulers that scale every group by one factor f(t) (``LambdaLR``
    with one lambda, ``MultiplicativeLR``, ``StepLR``, ``MultiStepLR``,
    ``ExponentialLR``, ``LinearLR``, ``ConstantLR``, ``PolynomialLR``,
    ``CosineAnnealingLR`` with ``eta_min=0``): the factor now is any group's
    current lr over its base lr.

    Args:
        optimizer (Optimizer): the optimizer the scheduler drives.
        scheduler (LRScheduler): the scheduler, built before this call.
        params (iterable of tensors): the parameters to train, e.g.
            ``layer.parameters()``; ``requires_grad`` is switched on.
        lr (float): the new group's base lr (its lr for the first step of the schedule).
    """
    params = list(params)  # a generator can be read only once
    for p in params:
        p.requires_grad_(True)
    factor = scheduler.get_last_lr()[0] / scheduler.base_lrs[0]
    optimizer.add_param_group({"params": params, "lr": lr * factor, "initial_lr": lr})
    scheduler.base_lrs.append(lr)
    if hasattr(scheduler, "lr_lambdas"):
        scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])
