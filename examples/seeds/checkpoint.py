import os
import sys
import tempfile

import graphc as torch
import graphc.nn as nn

COMPILE = "--compile" in sys.argv

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))


def train_step(x, y):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


step = torch.compile(train_step) if COMPILE else train_step
for _ in range(5):
    step(x, y)

path = os.path.join(tempfile.mkdtemp(), "model.pt")
torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)

restored = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
ckpt = torch.load(path)
restored.load_state_dict(ckpt["model"])
with torch.no_grad():
    same = (restored(x) - model(x)).abs().max().item()
print("max difference after reload:", same)
assert same == 0.0
print("final:", train_step(x, y).item())
