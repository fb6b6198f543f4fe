"""Notebook 00 (welcome): a first exercise to try the check system."""

from helpers.checking import exercise
from helpers.checking_tools import compare_function


def sgd_update(w: float, grad: float, lr: float) -> float:
    """One gradient-descent step on a single weight: w ← w − lr·grad."""
    return w - lr * grad


MISTAKES = {
    "you added lr·grad instead of subtracting it (w + lr·grad climbs uphill)": lambda w, grad, lr: (
        w + lr * grad
    ),
    "you forgot the learning rate (w − grad)": lambda w, grad, lr: w - grad,
    "you returned the step lr·grad instead of the new weight": lambda w, grad, lr: lr * grad,
    "you multiplied the weight instead of the gradient by lr (w − lr·w)": lambda w, grad, lr: (
        w - lr * w
    ),
}


@exercise(
    "00.1",
    "One SGD step",
    reference=sgd_update,
    hints=[
        "The gradient points uphill; to go down, move the weight against it.",
        "The learning rate lr scales how far you move: the step is lr times the gradient.",
        "Return the new weight: `return w - lr * grad`.",
    ],
)
def check_sgd_update(candidate):
    return compare_function(
        candidate,
        sgd_update,
        {
            "w=1.0, grad=0.5, lr=0.1": (1.0, 0.5, 0.1),
            "negative gradient: w=1.0, grad=-2.0, lr=0.1": (1.0, -2.0, 0.1),
            "lr=0 leaves w unchanged: w=3.0, grad=4.0, lr=0.0": (3.0, 4.0, 0.0),
            "w=-3.0, grad=4.0, lr=0.25": (-3.0, 4.0, 0.25),
        },
        mistakes=MISTAKES,
        what="the new weight",
    )
