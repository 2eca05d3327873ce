import sys

import graphc as torch
import graphc.nn as nn

COMPILE = "--compile" in sys.argv

torch.manual_seed(0)
net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
x = torch.randn(32, 2)
y = torch.sin(x[:, :1]) * torch.cos(x[:, 1:])


def train_step(x, y):
    optimizer.zero_grad()
    x = x.detach().requires_grad_(True)
    out = net(x)
    # gradient penalty: the norm of d(out)/d(x), itself differentiated
    (dx,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    loss = ((out - y) ** 2).mean() + 0.1 * (dx ** 2).sum(dim=1).mean()
    loss.backward()
    optimizer.step()
    return loss


if COMPILE:
    train_step = torch.compile(train_step)

for step in range(20):
    loss = train_step(x, y)
print("final:", loss.item())
