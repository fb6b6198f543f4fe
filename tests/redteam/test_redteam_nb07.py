# ruff: noqa: E701, E702, E501, E402, B007  (wrong answers written compactly, one idea a line)
"""Red team, notebook 07 (07.2): plausible wrong answers written from the student notebook's statement.

Each must fail and any likely cause it is told must be its own mistake (see redteam.py).
"""
import pytest
from redteam import assert_fails, cases

from helpers.lr_scheduler import LRScheduler as Base


class _StepLR(Base):
    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = step_size; self.gamma = gamma
        super().__init__(optimizer, last_epoch)


class StepClosedForm(_StepLR):
    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]
class StepDropsAtZero(_StepLR):
    def get_lr(self):
        drop = self.last_epoch % self.step_size == 0
        return [g["lr"] * (self.gamma if drop else 1) for g in self.optimizer.param_groups]
class StepOneLate(_StepLR):
    def get_lr(self):
        drop = self.last_epoch > 1 and (self.last_epoch - 1) % self.step_size == 0
        return [g["lr"] * (self.gamma if drop else 1) for g in self.optimizer.param_groups]
class StepFirstGroupOnly(_StepLR):
    def get_lr(self):
        drop = self.last_epoch > 0 and self.last_epoch % self.step_size == 0
        lr = self.optimizer.param_groups[0]["lr"] * (self.gamma if drop else 1)
        return [lr for _ in self.optimizer.param_groups]


WRONG = [
    ("07.2", StepClosedForm, 'does not start from the lr it finds', False),
    ("07.2", StepDropsAtZero, 'you also decay at step 0', False),
    ("07.2", StepOneLate, 'one step late', False),
    ("07.2", StepFirstGroupOnly, "every group got group 0's lr", False),
]


@pytest.mark.parametrize(("exercise_id", "candidate", "cause", "hidden_only"), cases(WRONG))
def test_a_wrong_answer_fails_with_its_own_cause(monkeypatch, exercise_id, candidate, cause, hidden_only):
    assert_fails(monkeypatch, exercise_id, candidate, cause, hidden_only)
