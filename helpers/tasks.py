"""The small real task notebooks 10–13 train on: 8×8 "digits" and an MLP.

Nothing is downloaded. Each of ten classes has a seeded 8×8 prototype (a few
strokes, blurred); a sample is its class's prototype, shifted by up to one pixel,
scaled in brightness and with pixel noise. The task is learnable (an MLP reaches
well above chance in a few hundred steps) but not trivial (classes overlap), so
optimizers and recipes give visibly different results on it.
"""

from dataclasses import dataclass

import torch
from torch import nn

SIDE = 8
CLASSES = 10


@dataclass(frozen=True)
class Task:
    """Inputs are ``n × 64`` float32 in [0, 1]; labels are ``n`` int64 in 0..9."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def train(self):
        return self.x_train, self.y_train

    @property
    def val(self):
        return self.x_val, self.y_val


def _prototypes(generator):
    """Ten 8×8 patterns of three random strokes each, lightly blurred."""
    images = torch.zeros(CLASSES, SIDE, SIDE)
    for image in images:
        for _ in range(3):
            row, col = torch.randint(0, SIDE, (2,), generator=generator).tolist()
            length = int(torch.randint(3, SIDE, (1,), generator=generator))
            if torch.rand(1, generator=generator) < 0.5:
                image[row, max(0, col - length // 2): col + length // 2 + 1] = 1.0
            else:
                image[max(0, row - length // 2): row + length // 2 + 1, col] = 1.0
    kernel = torch.tensor([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]])
    blurred = nn.functional.conv2d(images[:, None], kernel[None, None], padding=1)[:, 0]
    return blurred / blurred.amax(dim=(1, 2), keepdim=True)


def digits(n_train=1200, n_val=300, seed=0, noise=0.3):
    """The seeded task: ``n_train`` training and ``n_val`` validation samples."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = _prototypes(generator)
    n = n_train + n_val
    labels = torch.randint(0, CLASSES, (n,), generator=generator)
    shifts = torch.randint(-1, 2, (n, 2), generator=generator)
    images = torch.stack([
        torch.roll(prototypes[label], shifts=(int(dy), int(dx)), dims=(0, 1))
        for label, (dy, dx) in zip(labels.tolist(), shifts)
    ])
    brightness = 0.6 + 0.4 * torch.rand(n, 1, 1, generator=generator)
    images = images * brightness + noise * torch.randn(n, SIDE, SIDE, generator=generator)
    x = images.clamp(0, 1).reshape(n, SIDE * SIDE)
    return Task(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:])


def mlp(seed=0, hidden=64, depth=2):
    """A seeded MLP 64 → hidden (→ hidden …) → 10 with ReLUs; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers, width = [], SIDE * SIDE
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, CLASSES))
        return nn.Sequential(*layers)


@torch.no_grad()
def evaluate(model, x, y):
    """(mean cross-entropy, accuracy) of ``model`` on ``x, y``, in eval mode, as floats."""
    was_training = model.training
    model.eval()
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    model.train(was_training)
    return loss, accuracy
