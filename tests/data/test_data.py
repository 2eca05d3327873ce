"""graphc.utils.data: datasets, samplers, collation, DataLoader with and without workers."""
import collections
import gc as _pygc
import os
import time

import numpy as np
import pytest

import graphc as gc
from graphc.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, RandomSampler,
                               SequentialSampler, Subset, SubsetRandomSampler, TensorDataset,
                               default_collate, get_worker_info, random_split)

Point = collections.namedtuple("Point", "x y")


def _ds(n=10):
    x = gc.tensor(np.arange(n * 3, dtype=np.float32).reshape(n, 3))
    return TensorDataset(x, gc.arange(n))


class DictDataset(Dataset):
    """Samples of mixed types: what a real dataset's __getitem__ returns."""

    def __init__(self, n=7):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full((2,), i, dtype=np.float32), "i": i, "w": i / 2, "ok": i % 2 == 0,
                "name": f"s{i}", "pair": (gc.tensor([i, i + 1]), Point(i, float(i)))}


class Failing(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            raise ValueError(f"boom at index {i}")
        return i


class Exiting(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 3 and get_worker_info() is not None:
            os._exit(3)
        return i


class Sleepy(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        if get_worker_info() is not None:
            time.sleep(30)
        return i


class WhoAmI(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        info = get_worker_info()
        return -1 if info is None else info.id


def _as_lists(batches):
    """Batches as plain Python values, for comparing runs."""
    def conv(x):
        if isinstance(x, gc.Tensor):
            return (x.dtype.name, x.tolist())
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return (type(x).__name__, [conv(v) for v in x])
        return x
    return [conv(b) for b in batches]


# ---- datasets and samplers ------------------------------------------------------------------------
def test_tensor_dataset_and_subset_and_concat():
    ds = _ds(5)
    x, y = ds[2]
    assert x.tolist() == [6.0, 7.0, 8.0] and y.item() == 2 and len(ds) == 5
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(gc.zeros(3, 2), gc.zeros(4))
    sub = Subset(ds, [4, 0])
    assert len(sub) == 2 and sub[0][1].item() == 4 and sub[1][1].item() == 0
    cat = ConcatDataset([Subset(ds, [1, 2]), Subset(ds, [3])])
    assert len(cat) == 3 and [cat[i][1].item() for i in range(3)] == [1, 2, 3] and cat[-1][1].item() == 3
    assert len(ds + ds) == 10
    with pytest.raises(IndexError):
        cat[3]


def test_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    g = gc.Generator().manual_seed(3)
    perm = list(RandomSampler(range(6), generator=g))
    assert sorted(perm) == list(range(6))
    assert list(RandomSampler(range(6), generator=gc.Generator().manual_seed(3))) == perm
    draws = list(RandomSampler(range(3), replacement=True, num_samples=20, generator=g))
    assert len(draws) == 20 and set(draws) <= {0, 1, 2}
    assert len(list(RandomSampler(range(3), num_samples=7, generator=g))) == 7
    assert sorted(SubsetRandomSampler([5, 7, 9], generator=g)) == [5, 7, 9]
    bs = BatchSampler(SequentialSampler(range(7)), 3, drop_last=False)
    assert list(bs) == [[0, 1, 2], [3, 4, 5], [6]] and len(bs) == 3
    bs = BatchSampler(SequentialSampler(range(7)), 3, drop_last=True)
    assert list(bs) == [[0, 1, 2], [3, 4, 5]] and len(bs) == 2
    with pytest.raises(ValueError):
        BatchSampler(range(3), 0, False)


def test_random_split_sizes_disjoint_reproducible():
    ds = range(10)
    parts = random_split(ds, [3, 7], generator=gc.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [3, 7]
    idx = [i for p in parts for i in p.indices]
    assert sorted(idx) == list(range(10))
    again = random_split(ds, [3, 7], generator=gc.Generator().manual_seed(0))
    assert [p.indices for p in again] == [p.indices for p in parts]
    fr = random_split(range(11), [0.5, 0.3, 0.2], generator=gc.Generator().manual_seed(1))
    assert [len(p) for p in fr] == [6, 3, 2]  # floor 5, 3, 2 + remainder to the first
    assert len({i for p in fr for i in p.indices}) == 11
    gc.manual_seed(5)
    a = [p.indices for p in random_split(ds, [5, 5])]
    gc.manual_seed(5)
    assert [p.indices for p in random_split(ds, [5, 5])] == a
    with pytest.raises(ValueError, match="Sum of input lengths"):
        random_split(ds, [3, 3])


# ---- collation and batching -----------------------------------------------------------------------
def test_batching_and_drop_last():
    ds = _ds(10)
    batches = list(DataLoader(ds, batch_size=4))
    assert len(DataLoader(ds, batch_size=4)) == 3
    assert [tuple(b[0].shape) for b in batches] == [(4, 3), (4, 3), (2, 3)]
    assert isinstance(batches[0], list)  # a tuple sample collates into a list, as in torch
    assert batches[0][1].dtype is gc.int64 and batches[0][0].dtype is gc.float32
    assert batches[2][1].tolist() == [8, 9]
    dl = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(dl) == 2 and [b[1].tolist() for b in dl] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_default_collate_types():
    b = default_collate([DictDataset()[i] for i in range(3)])
    assert b["x"].dtype is gc.float32 and tuple(b["x"].shape) == (3, 2)
    assert b["i"].dtype is gc.int64 and b["i"].tolist() == [0, 1, 2]
    assert b["w"].dtype is gc.float64 and b["w"].tolist() == [0.0, 0.5, 1.0]
    assert b["ok"].dtype is gc.bool and b["ok"].tolist() == [True, False, True]
    assert b["name"] == ["s0", "s1", "s2"]
    t, p = b["pair"]
    assert t.tolist() == [[0, 1], [1, 2], [2, 3]]
    assert isinstance(p, Point) and p.x.tolist() == [0, 1, 2] and p.y.dtype is gc.float64
    od = default_collate([collections.OrderedDict(a=1.0), collections.OrderedDict(a=2.0)])
    assert isinstance(od, collections.OrderedDict)
    assert default_collate([np.float32(1), np.float32(2)]).dtype is gc.float32
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([object(), object()])


def test_no_auto_batching_and_custom_collate():
    out = list(DataLoader(DictDataset(2), batch_size=None))
    assert out[1]["i"] == 1 and isinstance(out[1]["x"], gc.Tensor) and tuple(out[1]["x"].shape) == (2,)
    sums = list(DataLoader(range(6), batch_size=3, collate_fn=sum))
    assert sums == [3, 12]


def test_argument_checks():
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(range(3), sampler=SequentialSampler(range(3)), shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler"):
        DataLoader(range(3), batch_size=2, batch_sampler=BatchSampler(range(3), 2, False))
    with pytest.raises(ValueError, match="persistent_workers"):
        DataLoader(range(3), persistent_workers=True)
    with pytest.raises(ValueError, match="non-negative"):
        DataLoader(range(3), num_workers=-1)
    dl = DataLoader(range(5), batch_sampler=BatchSampler(range(5), 2, True))
    assert [b.tolist() for b in dl] == [[0, 1], [2, 3]]


# ---- shuffling ----------------------------------------------------------------------------------
def test_seeded_shuffle_reproducible():
    ds = _ds(12)

    def order(loader):
        return [i for b in loader for i in b[1].tolist()]

    a = order(DataLoader(ds, batch_size=5, shuffle=True, generator=gc.Generator().manual_seed(7)))
    b = order(DataLoader(ds, batch_size=5, shuffle=True, generator=gc.Generator().manual_seed(7)))
    assert a == b and sorted(a) == list(range(12)) and a != list(range(12))
    loader = DataLoader(ds, batch_size=5, shuffle=True, generator=gc.Generator().manual_seed(7))
    assert order(loader) != order(loader)  # each epoch draws a new order
    gc.manual_seed(11)
    c = order(DataLoader(ds, batch_size=5, shuffle=True))
    gc.manual_seed(11)
    assert order(DataLoader(ds, batch_size=5, shuffle=True)) == c


# ---- worker processes -----------------------------------------------------------------------------
def test_workers_match_main_process():
    ds = DictDataset(9)
    kw = dict(batch_size=2, shuffle=True)
    ref = _as_lists(DataLoader(ds, generator=gc.Generator().manual_seed(3), **kw))
    got = _as_lists(DataLoader(ds, num_workers=2, generator=gc.Generator().manual_seed(3), **kw))
    assert got == ref
    plain = list(DataLoader(_ds(7), batch_size=3, num_workers=2))
    assert [b[1].tolist() for b in plain] == [[0, 1, 2], [3, 4, 5], [6]]
    x = plain[0][0]
    assert x.dtype is gc.float32 and x._data.flags.writeable
    assert x.requires_grad is False and x.grad_fn is None


def test_persistent_workers_across_epochs():
    dl = DataLoader(_ds(6), batch_size=4, num_workers=2, persistent_workers=True)
    first = [b[1].tolist() for b in dl]
    pool = dl._pool
    it = iter(dl)
    next(it)  # abandon an epoch half way
    assert [b[1].tolist() for b in dl] == first == [[0, 1, 2, 3], [4, 5]]
    assert dl._pool is pool and all(p.is_alive() for p in pool.workers)
    with pytest.raises(RuntimeError, match="superseded"):
        next(it)
    pool.shutdown()
    assert not any(p.is_alive() for p in pool.workers)


def test_worker_info_and_seeds():
    ids = [b.tolist() for b in DataLoader(WhoAmI(), batch_size=2, num_workers=2)]
    assert ids == [[0, 0], [1, 1], [0, 0]]  # batches go round-robin
    assert [b.tolist() for b in DataLoader(WhoAmI(), batch_size=3)] == [[-1] * 3] * 2
    assert get_worker_info() is None


def test_worker_exception_propagates_with_traceback():
    dl = DataLoader(Failing(), batch_size=2, num_workers=2)
    with pytest.raises(ValueError) as ei:
        list(dl)
    msg = str(ei.value)
    assert "Caught ValueError in DataLoader worker process" in msg
    assert "boom at index 5" in msg and "__getitem__" in msg  # the worker's traceback text

    def bad_init(worker_id):
        raise KeyError(f"init {worker_id}")
    with pytest.raises(KeyError, match="worker_init_fn"):
        list(DataLoader(range(4), batch_size=2, num_workers=2, worker_init_fn=bad_init))


def test_worker_death_and_timeout_do_not_hang():
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with code 3"):
        list(DataLoader(Exiting(), batch_size=1, num_workers=2))
    with pytest.raises(RuntimeError, match="timed out after 0.5 seconds"):
        list(DataLoader(Sleepy(), batch_size=1, num_workers=1, timeout=0.5))
    assert time.monotonic() - t0 < 10


def test_early_break_shuts_workers_down():
    it = iter(DataLoader(_ds(20), batch_size=2, num_workers=2))
    next(it)
    procs = list(it._pool.workers)
    assert all(p.is_alive() for p in procs)
    del it
    _pygc.collect()
    deadline = time.monotonic() + 10
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(p.is_alive() for p in procs)


# ---- against torch ------------------------------------------------------------------------------
def test_collate_matches_torch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as t_collate

    def sample(i, lib):
        arr = np.arange(6, dtype=np.float64).reshape(2, 3) * i
        return {"img": lib.tensor(np.full((3, 2), i, dtype=np.float32)), "label": i, "w": 0.5 * i,
                "flag": bool(i % 2), "arr": arr, "ids": np.array([i, 2 * i], dtype=np.int64),
                "np32": np.float32(i), "name": f"n{i}", "tup": (lib.tensor([i]), float(i))}

    ours = next(iter(DataLoader([sample(i, gc) for i in range(4)], batch_size=4)))
    theirs = t_collate([sample(i, torch) for i in range(4)])

    def check(a, b, where):
        if isinstance(b, torch.Tensor):
            assert isinstance(a, gc.Tensor), where
            assert tuple(a.shape) == tuple(b.shape), where
            assert a.dtype.name == str(b.dtype).replace("torch.", ""), where
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=where)
        elif isinstance(b, dict):
            assert type(a) is type(b) and a.keys() == b.keys(), where
            for k in b:
                check(a[k], b[k], f"{where}[{k!r}]")
        elif isinstance(b, (list, tuple)):
            assert type(a) is type(b) and len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b)):
                check(x, y, f"{where}[{i}]")
        else:
            assert a == b, where
    check(ours, theirs, "batch")
