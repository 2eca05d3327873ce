"""EmbeddingBag (sum / mean / max, 2D inputs, offsets with empty bags, include_last_offset,
per_sample_weights, padding_idx) and ParameterList / ParameterDict (registration, state_dict
keys, optimizers, reprs) against torch 2.13."""
import numpy as np
import pytest

import graphc as gc
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.testing import gradcheck
from test_nn_surface_torch import compare, load_from_torch, npy, rand

torch = pytest.importorskip("torch")
TF = torch.nn.functional

IDX = np.array([1, 4, 4, 0, 7, 2, 9, 2, 5])
OFFSETS = np.array([0, 3, 3, 6])           # the bag [3, 3) is empty
BAG_CASES = [
    ("2d", np.array([[1, 2, 4], [4, 3, 2]]), None, {}),
    ("offsets", IDX, OFFSETS, {}),
    ("last_offset", IDX, np.array([0, 2, 5, 5, 9]), dict(include_last_offset=True)),
    ("padding_idx", IDX, OFFSETS, dict(padding_idx=2)),
    ("2d_padding_all", np.array([[2, 2], [1, 2]]), None, dict(padding_idx=2)),
    ("single", np.array([[3]]), None, {}),
]


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("name,idx,offsets,kw", BAG_CASES, ids=[c[0] for c in BAG_CASES])
def test_embedding_bag_matches_torch(name, idx, offsets, kw, mode):
    w = rand(10, 3)
    args = [idx, w] + ([offsets] if offsets is not None else [])
    compare(lambda i, w, *o: F.embedding_bag(i, w, *o, mode=mode, **kw),
            lambda i, w, *o: TF.embedding_bag(i, w, *o, mode=mode, **kw), *args, what=f"{name} {mode}")


def test_embedding_bag_per_sample_weights_and_gradcheck():
    w, psw = rand(10, 3), rand(9, seed=1)
    compare(lambda i, w, o, s: F.embedding_bag(i, w, o, mode="sum", per_sample_weights=s),
            lambda i, w, o, s: TF.embedding_bag(i, w, o, mode="sum", per_sample_weights=s), IDX, w, OFFSETS, psw)
    compare(lambda i, w, s: F.embedding_bag(i, w, mode="sum", per_sample_weights=s, padding_idx=4),
            lambda i, w, s: TF.embedding_bag(i, w, mode="sum", per_sample_weights=s, padding_idx=4),
            IDX.reshape(3, 3), w, psw.reshape(3, 3))
    i, o = gc.tensor(IDX), gc.tensor(OFFSETS)
    for mode in ("sum", "mean", "max"):
        assert gradcheck(lambda w: F.embedding_bag(i, w, o, mode=mode), [gc.tensor(w)])
    assert gradcheck(lambda w, s: F.embedding_bag(i, w, o, mode="sum", per_sample_weights=s),
                     [gc.tensor(w), gc.tensor(psw)])


@pytest.mark.parametrize("kw", [dict(), dict(mode="sum"), dict(mode="max", padding_idx=3),
                                dict(mode="mean", include_last_offset=True)])
def test_embedding_bag_module_matches_torch(kw):
    tm, gm = torch.nn.EmbeddingBag(10, 4, **kw), nn.EmbeddingBag(10, 4, **kw)
    assert repr(gm) == repr(tm) and list(gm.state_dict()) == list(tm.state_dict())
    offsets = np.array([0, 4, 4, 9]) if kw.get("include_last_offset") else OFFSETS
    compare(gm, tm, IDX, offsets, gmod=gm, tmod=tm)
    if "padding_idx" in kw:
        np.testing.assert_array_equal(npy(nn.EmbeddingBag(10, 4, **kw).weight)[3], 0)


def test_embedding_bag_errors_as_torch():
    w = gc.randn(10, 3)
    with pytest.raises(NotImplementedError, match="only supported for mode='sum'"):
        F.embedding_bag(gc.tensor(IDX), w, gc.tensor(OFFSETS), mode="mean", per_sample_weights=gc.ones(9))
    with pytest.raises(ValueError, match="offsets has to be None"):
        F.embedding_bag(gc.tensor([[1, 2]]), w, gc.tensor([0]))
    with pytest.raises(ValueError, match="offsets has to be a 1D Tensor but got None"):
        F.embedding_bag(gc.tensor(IDX), w)
    with pytest.raises(RuntimeError, match="offsets\\[0\\] has to be 0"):
        F.embedding_bag(gc.tensor(IDX), w, gc.tensor([1, 3]))
    with pytest.raises(ValueError, match="the last offset must be the number of indices"):
        F.embedding_bag(gc.tensor(IDX), w, gc.tensor([0, 2, 5]), include_last_offset=True)   # torch: garbage
    with pytest.raises(NotImplementedError, match="max_norm"):
        nn.EmbeddingBag(10, 3, max_norm=1.0)
    with pytest.raises(ValueError, match="mode has to be one of"):
        nn.EmbeddingBag(10, 3, mode="median")


# =================================================================================================
# ParameterList / ParameterDict
# =================================================================================================
class _Holder:
    def __init__(self, m):
        self.lst = m.ParameterList([m.Parameter(torch_or_gc(m).ones(2, 3)), m.Parameter(torch_or_gc(m).zeros(4))])
        self.dct = m.ParameterDict({"b": m.Parameter(torch_or_gc(m).ones(3)), "a": m.Parameter(torch_or_gc(m).ones(1))})


def torch_or_gc(m):
    return torch if m is torch.nn else gc


def _model(m):
    class Net(m.Module):
        def __init__(self):
            super().__init__()
            h = _Holder(m)
            self.lst, self.dct = h.lst, h.dct
            self.lst.append(torch_or_gc(m).full((2,), 0.5))        # a plain tensor: wrapped in a Parameter
            self.dct["c"] = torch_or_gc(m).ones(2, 2)

        def forward(self, x):
            return (x @ self.lst[0]).sum() * self.dct["b"].sum() + self.lst[-1].sum() + self.dct["c"].sum()
    return Net()


def test_parameter_containers_register_like_torch():
    gm, tm = _model(nn), _model(torch.nn)
    assert list(gm.state_dict()) == list(tm.state_dict()) == ["lst.0", "lst.1", "lst.2", "dct.a", "dct.b", "dct.c"]
    assert [k for k, _ in gm.named_parameters()] == [k for k, _ in tm.named_parameters()]
    assert all(isinstance(p, nn.Parameter) for p in gm.lst) and isinstance(gm.dct["c"], nn.Parameter)
    load_from_torch(gm, tm)
    x = rand(4, 2)
    compare(gm, tm, x, gmod=gm, tmod=tm, dtypes=(np.float64,))
    opt = gc.optim.SGD(gm.parameters(), lr=0.1)
    gm(gc.tensor(x)).backward()
    before = npy(gm.lst[2])
    opt.step()
    assert not np.array_equal(npy(gm.lst[2]), before)


def test_parameter_list_and_dict_api():
    pl = nn.ParameterList([nn.Parameter(gc.ones(2)), nn.Parameter(gc.zeros(3))])
    assert len(pl) == 2 and pl[-1].shape == (3,) and len(pl[0:1]) == 1
    pl[0] = gc.full((2,), 3.0)
    assert isinstance(pl[0], nn.Parameter) and float(pl[0].sum().item()) == 6.0
    pl += [nn.Parameter(gc.ones(1))]
    assert len(pl) == 3 and len(list(pl.parameters())) == 3
    with pytest.raises(IndexError):
        pl[3]
    assert list(nn.ParameterDict({"z": gc.ones(1), "a": gc.ones(1)})) == \
        list(torch.nn.ParameterDict({"z": torch.ones(1), "a": torch.ones(1)})) == ["a", "z"]
    pd = nn.ParameterDict({"w": nn.Parameter(gc.ones(2))})
    pd.update({"v": gc.zeros(1)})
    assert list(pd) == ["w", "v"] and "v" in pd and pd.get("x") is None
    assert pd.pop("w").shape == (2,) and list(pd.keys()) == ["v"] and len(pd) == 1
    assert [k for k, _ in pd.named_parameters()] == ["v"]
    with pytest.raises(KeyError):
        pd["w"]
    tl = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2, 3))])
    gl = nn.ParameterList([nn.Parameter(gc.ones(2, 3))])
    assert repr(gl).replace("graphc.", "torch.") == repr(tl)
