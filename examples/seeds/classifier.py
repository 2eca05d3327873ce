import sys

import graphc as torch
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.utils.data import DataLoader, TensorDataset

COMPILE = "--compile" in sys.argv

torch.manual_seed(0)
# synthetic "images": 10 classes, each a noisy prototype
protos = torch.randn(10, 784)
labels = torch.randint(0, 10, (512,))
images = protos[labels] + 0.5 * torch.randn(512, 784)
loader = DataLoader(TensorDataset(images, labels), batch_size=64, shuffle=True,
                    generator=torch.Generator().manual_seed(1))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


model = Net()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def train_step(x, y):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


if COMPILE:
    train_step = torch.compile(train_step)

for epoch in range(3):
    total = 0.0
    for x, y in loader:
        total += train_step(x, y).item()
    print(f"epoch {epoch}: mean loss {total / len(loader):.4f}")

with torch.no_grad():
    acc = (model(images).argmax(dim=1) == labels).float().mean().item()
print(f"train accuracy {acc:.3f}")
print("final:", total / len(loader))
