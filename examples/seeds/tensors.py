import sys

import graphc as torch

COMPILE = "--compile" in sys.argv

torch.manual_seed(0)
a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
b = torch.ones(2, 2)
z = torch.zeros(3, dtype=torch.int64)
r = torch.arange(0, 10, 2)
print(a + b, a * 2, a @ b, r, z.dtype)
print(a.sum(), a.mean(dim=0), a.max(), a.argmax(dim=1), a.T, a[:, 1], a[a > 2])
x = torch.randn(4, 3)
print(x.shape, x.view(12).shape, x.unsqueeze(0).shape, torch.cat([x, x]).shape)


def f(x, y):
    return (x * y + y.exp()).sum(dim=1)


f = torch.compile(f) if COMPILE else f
out = f(torch.linspace(0, 1, 6).reshape(2, 3), torch.full((2, 3), 0.5))
print("final:", out.sum().item())
