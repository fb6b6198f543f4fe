"""helpers.optim.memory against hand counts of torch's optimizers' state."""

import torch

from helpers import optim
from helpers.optim.memory import bytes_per_parameter, parameter_count, state_bytes


def _stepped(make, shapes, dtype=torch.float32, no_grad=()):
    params = [torch.zeros(s, dtype=dtype, requires_grad=True) for s in shapes]
    optimizer = make(params)
    for i, p in enumerate(params):
        p.grad = None if i in no_grad else torch.ones_like(p)
    optimizer.step()
    return optimizer


def test_sgd_without_momentum_keeps_nothing():
    assert state_bytes(_stepped(lambda p: torch.optim.SGD(p, lr=0.1), [(3, 4)])) == 0


def test_momentum_keeps_one_buffer_of_the_parameters_dtype():
    optimizer = _stepped(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), [(3, 4), (5,)],
                         dtype=torch.float64)
    assert state_bytes(optimizer) == 8 * 17 and bytes_per_parameter(optimizer) == 8.0


def test_adam_keeps_two_moments_and_a_float32_step_per_tensor():
    for make in (lambda p: torch.optim.Adam(p, lr=0.1), lambda p: optim.Adam(p, lr=0.1)):
        optimizer = _stepped(make, [(3, 4), (5,), (2,)], no_grad=(2,))
        assert state_bytes(optimizer) == 2 * 4 * 17 + 2 * 4  # the third has no state
        assert parameter_count(optimizer) == 19
        assert bytes_per_parameter(optimizer) == (2 * 4 * 17 + 8) / 19


def test_adafactor_keeps_row_and_column_means_of_a_matrix():
    optimizer = _stepped(lambda p: torch.optim.Adafactor(p, lr=0.01), [(6, 10)])
    assert state_bytes(optimizer) == 4 * (6 + 10) + 4  # row_var, col_var and the step
    assert state_bytes(_stepped(lambda p: optim.Adafactor(p, lr=0.01), [(6, 10)])) == 4 * 16 + 4
