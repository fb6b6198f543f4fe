"""Lion is not in torch.optim: it is checked against Algorithm 2 of Chen et al. (2023),
"Symbolic Discovery of Optimization Algorithms", transcribed below on its own."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import assert_resumes, cases, compare

import helpers.optim as ours


class PaperLion(torch.optim.Optimizer):
    """Algorithm 2 line by line; torch.optim.Optimizer only holds the groups and state."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
        super().__init__(
            params, {"lr": lr, "betas": betas, "weight_decay": weight_decay, "maximize": maximize}
        )

    @torch.no_grad()
    def step(self, closure):
        with torch.enable_grad():
            loss = closure()
        for group in self.param_groups:
            eta, (beta1, beta2), lam = group["lr"], group["betas"], group["weight_decay"]
            for theta in group["params"]:
                if theta.grad is None:
                    continue
                g = -theta.grad if group["maximize"] else theta.grad
                m = self.state[theta].setdefault("exp_avg", torch.zeros_like(theta))
                c = beta1 * m + (1 - beta1) * g  # update interpolation
                theta.copy_(theta - eta * (torch.sign(c) + lam * theta))  # sign update, decay
                m.copy_(beta2 * m + (1 - beta2) * g)  # momentum update
        return loss


# In float32 the transcription's arithmetic (β·m + (1 − β)·g, out of place) rounds
# differently from the implementation's (lerp, in place) by a few ulps per step.
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
GROUPS = ({"lr": 1e-3}, {"lr": 3e-4, "betas": (0.95, 0.98), "weight_decay": 0.5})
OPTIONS = [
    {},
    {"betas": (0.5, 0.9)},
    {"weight_decay": 1.0},
    {"maximize": True},
    {"betas": (0.5, 0.9), "weight_decay": 1.0, "maximize": True},
]


@pytest.mark.parametrize(("options", "dtype"), cases(OPTIONS), ids=str)
def test_matches_paper(options, dtype):
    compare(ours.Lion, PaperLion, dtype, GROUPS, tol=TOL[dtype], **options)


@settings(max_examples=8, deadline=None)
@given(
    lr=st.floats(0, 0.01), beta1=st.floats(0, 0.99), beta2=st.floats(0, 0.999), weight_decay=st.floats(0, 2)
)
def test_matches_paper_over_hyperparameters(lr, beta1, beta2, weight_decay):
    compare(
        ours.Lion,
        PaperLion,
        torch.float64,
        ({}, {"lr": lr / 2}),
        steps=25,
        lr=lr,
        betas=(beta1, beta2),
        weight_decay=weight_decay,
    )


def test_every_coordinate_moves_by_lr():
    """Without decay a step changes each coordinate by exactly ±lr (the sign update)."""
    p = torch.tensor([3.0, -2.0, 0.5], requires_grad=True)
    opt = ours.Lion([p], lr=0.1)
    p.grad = torch.tensor([1e-6, -50.0, 2.0])
    opt.step()
    assert torch.allclose(p, torch.tensor([2.9, -1.9, 0.4]), rtol=0, atol=1e-7)


def test_state_dict_resumes():
    assert_resumes(ours.Lion, PaperLion, torch.float32, GROUPS, tol=TOL[torch.float32])
