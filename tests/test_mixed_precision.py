"""helpers.mixed_precision.MasterWeights against hand computations in float32 and bf16."""

import torch

from helpers.mixed_precision import MasterWeights


def test_sgd_through_masters_is_the_float32_sum_rounded_to_bf16():
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(5, 4, generator=generator)
    p = start.to(torch.bfloat16).requires_grad_()
    wrapper = MasterWeights([p], torch.optim.SGD, lr=0.01)
    by_hand = start.to(torch.bfloat16).float()  # the master starts from the bf16 value
    for _ in range(7):
        g = torch.randn(5, 4, generator=generator).to(torch.bfloat16)
        p.grad = g
        wrapper.step()
        by_hand = by_hand - 0.01 * g.float()  # float32, one step at a time
    assert wrapper.master[0].dtype == torch.float32 and p.dtype == torch.bfloat16
    assert torch.equal(wrapper.master[0], by_hand)
    assert torch.equal(p.detach(), by_hand.to(torch.bfloat16))


def test_updates_below_bf16s_resolution_vanish_without_masters_only():
    direct = torch.ones(1, dtype=torch.bfloat16, requires_grad=True)
    mastered = torch.ones(1, dtype=torch.bfloat16, requires_grad=True)
    sgd = torch.optim.SGD([direct], lr=1e-3)
    wrapper = MasterWeights([mastered], torch.optim.SGD, lr=1e-3)
    for _ in range(10):
        direct.grad = torch.ones(1, dtype=torch.bfloat16)
        mastered.grad = torch.ones(1, dtype=torch.bfloat16)
        sgd.step()
        wrapper.step()
    # below 1, bf16's neighbours are 2⁻⁸ apart: 1 − 0.001 rounds back to 1 every time, while
    # the master reaches 0.99, whose nearest bf16 value is 1 − 3·2⁻⁸ = 0.98828125
    assert direct.item() == 1.0
    assert abs(wrapper.master[0].item() - 0.99) < 1e-6
    assert mastered.item() == 1 - 3 * 2**-8


def test_a_parameter_without_gradient_is_skipped_and_the_state_is_fp32():
    a = torch.ones(3, dtype=torch.bfloat16, requires_grad=True)
    b = torch.ones(2, dtype=torch.bfloat16, requires_grad=True)
    wrapper = MasterWeights([a, b], torch.optim.Adam, lr=0.1)
    a.grad = torch.ones(3, dtype=torch.bfloat16)
    wrapper.step()
    assert torch.equal(b.detach(), torch.ones(2, dtype=torch.bfloat16))
    assert torch.equal(wrapper.master[1], torch.ones(2))
    state = wrapper.optimizer.state[wrapper.master[0]]
    assert state["exp_avg"].dtype == torch.float32 and wrapper.master[1] not in wrapper.optimizer.state
    wrapper.zero_grad()
    assert a.grad is None
