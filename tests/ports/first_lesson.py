"""First-lesson PyTorch: an nn.Sequential MLP fitted with MSELoss by a hand-written
update under no_grad, then trained for classification with SGD + momentum, gradient
clipping and a StepLR schedule; accuracy by argmax.

This file is PyTorch code. The tests run it with only the three import lines below
changed (see tests/test_ports.py); scripts/make_fixtures.py runs it as it is.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim


def make_data(n=48):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, size=n)
    angles = rng.uniform(0, np.pi, size=n)
    points = np.stack([np.cos(angles) + labels, np.sin(angles) * (1 - 2 * labels)], axis=1)
    points = points + 0.1 * rng.standard_normal((n, 2))
    return torch.tensor(points.astype(np.float32)), torch.tensor(labels)


def run(initial_state=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    if initial_state is not None:
        model.load_state_dict({k: torch.tensor(v) for k, v in initial_state.items()},
                              strict=True)
    start = {k: np.array(v) for k, v in model.state_dict().items()}
    X, y = make_data()
    targets = F.one_hot(y, num_classes=2).float()

    # Lesson 1: gradient descent by hand.
    loss_fn = nn.MSELoss()
    lr = 0.1
    manual_losses = []
    for _ in range(5):
        loss = loss_fn(model(X), targets)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        manual_losses.append(loss.item())

    # Lesson 2: an optimizer, a schedule, clipping.
    optimizer = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    criterion = nn.CrossEntropyLoss()
    losses, norms, rates = [], [], []
    for _ in range(8):
        optimizer.zero_grad()
        loss = criterion(model(X), y)
        loss.backward()
        norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)))
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        rates.append(scheduler.get_last_lr()[0])

    with torch.no_grad():
        predictions = model(X).argmax(dim=1)
        accuracy = (predictions == y).float().mean().item()
    return {
        "initial": start,
        "manual_losses": np.array(manual_losses, dtype=np.float32),
        "losses": np.array(losses, dtype=np.float32),
        "norms": np.array(norms, dtype=np.float32),
        "rates": np.array(rates),
        "predictions": np.array(predictions.numpy()),
        "accuracy": np.array(accuracy),
        "final": {k: np.array(v) for k, v in model.state_dict().items()},
    }
