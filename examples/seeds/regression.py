import sys

import graphc as torch
import graphc.nn as nn

COMPILE = "--compile" in sys.argv

torch.manual_seed(0)
X = torch.randn(64, 2)
y = (X[:, :1] * 3 - X[:, 1:] * 2 + 0.5)

model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


def train_step(X, y):
    optimizer.zero_grad()
    loss = criterion(model(X), y)
    loss.backward()
    optimizer.step()
    return loss


if COMPILE:
    train_step = torch.compile(train_step)

for epoch in range(200):
    loss = train_step(X, y)
    if epoch % 50 == 0:
        print(f"epoch {epoch}: loss {loss.item():.5f}")
print("final:", loss.item())
