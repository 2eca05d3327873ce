import sys

import graphc as torch
import graphc.nn as nn

COMPILE = "--compile" in sys.argv

torch.manual_seed(0)


def huber_loss(pred, target, delta=1.0):
    err = (pred - target).abs()
    quad = torch.clamp(err, max=delta)
    return (0.5 * quad ** 2 + delta * (err - quad)).mean()


model = nn.Linear(5, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(32, 5)
y = x.sum(dim=1, keepdim=True) + 3 * torch.randn(32, 1)


def train_step(x, y):
    optimizer.zero_grad()
    loss = huber_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


if COMPILE:
    train_step = torch.compile(train_step)

for step in range(50):
    loss = train_step(x, y)
print("final:", loss.item())
