"""Train an MLP and a small CNN on scikit-learn's 8x8 digits, eagerly and compiled.

    python examples/digits.py [--model mlp|cnn|both] [--epochs N]

Prints a progress bar per epoch, the test accuracy of each run, and the eager and compiled
time per epoch side by side. (The dataset ships inside scikit-learn: no download.)"""
from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.utils.data import DataLoader, TensorDataset


def load(seed=0):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    n_test = len(x) // 5
    return (gc.tensor(x[n_test:]), gc.tensor(y[n_test:])), (gc.tensor(x[:n_test]), gc.tensor(y[:n_test]))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = x.reshape(-1, 1, 8, 8)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def run(make_model, compiled, train, test, epochs, lr, seed=0, desc=""):
    gc.manual_seed(seed)
    model = make_model()
    opt = gc.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = DataLoader(TensorDataset(*train), batch_size=64, shuffle=True, drop_last=True,
                        generator=gc.Generator().manual_seed(seed))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step = gc.compile(step) if compiled else step
    times = []
    for epoch in range(epochs):
        model.train()
        t0 = time.perf_counter()
        bar = tqdm(loader, desc=f"{desc} epoch {epoch + 1}/{epochs}", leave=False)
        total = 0.0
        for x, y in bar:
            loss = step(x, y)
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        times.append(time.perf_counter() - t0)
    model.eval()
    with gc.no_grad():
        acc = (model(test[0]).argmax(dim=1) == test[1]).float().mean().item()
    return acc, times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["mlp", "cnn", "both"], default="both")
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args(argv)
    train, test = load()
    models = {"mlp": (MLP, 0.05), "cnn": (CNN, 0.05)}
    rows = []
    for name in (["mlp", "cnn"] if args.model == "both" else [args.model]):
        make, lr = models[name]
        acc_e, t_e = run(make, False, train, test, args.epochs, lr, desc=f"{name} eager")
        acc_c, t_c = run(make, True, train, test, args.epochs, lr, desc=f"{name} compiled")
        rows.append((name, acc_e, acc_c, np.median(t_e), np.median(t_c[1:] or t_c), t_c[0]))
    print(f"\n{'model':6} {'acc eager':>10} {'acc compiled':>13} {'s/epoch eager':>14} "
          f"{'s/epoch compiled':>17} {'speedup':>8} {'1st epoch (compile)':>20}")
    for name, ae, ac, te, tc, t0 in rows:
        print(f"{name:6} {ae:10.4f} {ac:13.4f} {te:14.3f} {tc:17.3f} {te / tc:7.2f}x {t0:19.3f}s")
    return rows


if __name__ == "__main__":
    main()
