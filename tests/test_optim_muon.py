import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_compare import DTYPES, assert_resumes, assert_same_errors, compare

import helpers.optim as ours
from helpers.optim.muon import newton_schulz

MATRICES = ((3, 4), (4, 5), (6, 2))  # wide and tall


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """On CPU, a bfloat16 matmul with a transposed operand (X @ X.T in Newton–Schulz, ours
    and torch's) can take milliseconds with 2 threads and microseconds with one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


GROUPS = ({"lr": 0.02}, {"lr": 0.01, "momentum": 0.9, "adjust_lr_fn": "match_rms_adamw"})
OPTIONS = [
    {},
    {"nesterov": False, "weight_decay": 0.0},
    {"adjust_lr_fn": "original", "momentum": 0.0},
    {"adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.3},
    {"ns_steps": 2, "ns_coefficients": (2.0, -1.5, 0.5), "eps": 1e-2},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_matches_torch(options, dtype, record_property):
    record_property(
        "deviation", compare(ours.Muon, torch.optim.Muon, dtype, GROUPS, shapes=MATRICES, **options)
    )


@settings(max_examples=8, deadline=None)
@given(
    lr=st.floats(0, 0.1),
    momentum=st.floats(0, 0.99),
    weight_decay=st.floats(0, 0.5),
    nesterov=st.booleans(),
    ns_steps=st.integers(0, 6),
)
def test_matches_torch_over_hyperparameters(lr, momentum, weight_decay, nesterov, ns_steps):
    compare(
        ours.Muon,
        torch.optim.Muon,
        torch.float64,
        ({}, {"lr": lr / 2}),
        steps=10,
        shapes=MATRICES,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov,
        ns_steps=ns_steps,
    )


def test_defaults_match_torch():
    params = [torch.zeros(2, 2, requires_grad=True)]
    theirs = torch.optim.Muon(params).defaults
    assert ours.Muon(params).defaults == {k: theirs[k] for k in ours.Muon(params).defaults}


@pytest.mark.parametrize("shape", [(8, 5), (5, 8)])
def test_newton_schulz_flattens_the_singular_values(shape):
    """Independent of torch: the singular values of G spread over a factor > 20, those
    of NS(G) lie within Keller Jordan's reported (0.5, 1.5), with G's singular vectors."""
    g = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(shape[0], shape[0], generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(shape[1], shape[1], generator=g, dtype=torch.float64))
    k = min(shape)
    s = torch.logspace(0, -1.5, k, dtype=torch.float64)
    G = u[:, :k] @ torch.diag(s) @ v[:, :k].T
    ortho = newton_schulz(G, (3.4445, -4.7750, 2.0315), 5, 1e-7).double()
    s_new = torch.linalg.svdvals(ortho)
    assert 0.5 < s_new.min() and s_new.max() < 1.5, s_new
    # same singular vectors: O ≈ U·S'·Vᵀ, so Uᵀ·O·V is (nearly) diagonal
    core = u[:, :k].T @ ortho @ v[:, :k]
    off_diagonal = core - torch.diag(torch.diagonal(core))
    assert off_diagonal.abs().max() < 0.05 * s_new.min()


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_resumes(dtype, record_property):
    record_property("deviation", assert_resumes(ours.Muon, torch.optim.Muon, dtype, GROUPS, shapes=MATRICES))


def test_bad_arguments_raise_like_torch():
    assert_same_errors(
        ours.Muon,
        torch.optim.Muon,
        [
            {"lr": -1e-3},
            {"momentum": -0.9},
            {"weight_decay": -0.1},
            {"adjust_lr_fn": "sqrt"},
            {},  # the test parameter is 1-D
        ],
    )


@pytest.mark.parametrize("kwargs", [{"ns_steps": 100}, {"ns_coefficients": (1.0, 2.0)}], ids=str)
def test_bad_newton_schulz_arguments_raise_at_construction(kwargs):
    """torch raises the same ValueError, but only in the first step()."""
    p = torch.ones(2, 3, requires_grad=True)
    with pytest.raises(ValueError) as ours_error:
        ours.Muon([p], **kwargs)
    theirs = torch.optim.Muon([p], **kwargs)
    p.sum().backward()
    with pytest.raises(ValueError, match=str(ours_error.value)):
        theirs.step()


def test_add_param_group_accepts_only_matrices():
    opt = ours.Muon([torch.ones(2, 3, requires_grad=True)])
    opt.add_param_group({"params": [torch.ones(4, 2, requires_grad=True)], "lr": 0.1})
    with pytest.raises(ValueError, match="only supports 2D parameters"):
        opt.add_param_group({"params": [torch.ones(4, requires_grad=True)]})
