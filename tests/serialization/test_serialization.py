"""graphc.serialization: save/load round trips, and clear errors for every kind of bad file."""
import hashlib
import io
import json
import math
import os
import pickle
import struct
from collections import OrderedDict

import numpy as np
import pytest

import graphc as gc
from graphc.serialization import MAGIC, CheckpointError, load, save

ALL_DTYPES = [gc.float32, gc.float64, gc.int64, gc.bool]


def _roundtrip(obj):
    f = io.BytesIO()
    save(obj, f)
    f.seek(0)
    return load(f)


def _same(a, b):
    assert isinstance(b, gc.Tensor) and a.dtype is b.dtype and tuple(a.shape) == tuple(b.shape)
    np.testing.assert_array_equal(a._data, b._data)


def _container(header: dict, data: bytes = b"", version=1) -> bytes:
    """A well-formed container (valid checksum) around any header: for tampering tests.
    Written from the layout documented in graphc/serialization/__init__.py, independently of it."""
    hb = json.dumps(header).encode()
    pre = struct.pack("<8sIIQQ", MAGIC, version, 0, len(hb), len(data))
    pad = b"\0" * (-(len(pre) + len(hb)) % 64)
    body = pre + hb + pad + data
    return body + hashlib.sha256(body).digest()


def _load_bytes(b: bytes, tmp_path, name="bad.ckpt"):
    p = tmp_path / name
    p.write_bytes(b)
    return load(p)


# ---- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (5,), (2, 3, 4)], ids=str)
def test_roundtrip_every_dtype_and_shape(dtype, shape):
    rng = np.random.default_rng(0)
    arr = np.asarray(rng.standard_normal(shape) * 10).astype(dtype.np)
    t = gc.from_numpy(arr.copy())
    out = _roundtrip(t)
    _same(t, out)
    assert out._data.flags.writeable and not np.shares_memory(out._data, t._data)
    out._data[...] = 1
    np.testing.assert_array_equal(t._data, arr)  # fresh memory: the original is untouched


def test_file_path_roundtrip_and_fresh_tensors(tmp_path):
    w = gc.randn(4, 3)
    p = tmp_path / "model.ckpt"
    save({"w": w, "wt": w.t()}, p)  # a non-contiguous view too
    r = load(str(p))
    _same(w, r["w"])
    np.testing.assert_array_equal(r["wt"]._data, w._data.T)
    r["w"]._data[0, 0] = 123.0
    assert w._data[0, 0] != 123.0
    assert [q.name for q in tmp_path.iterdir()] == ["model.ckpt"]  # no temp files left


def test_nested_structures_and_scalars():
    w = gc.randn(2, 2)
    obj = {
        "model": OrderedDict([("layer.weight", w), ("layer.bias", gc.zeros(2))]),
        "optim": {"state": {0: {"step": 3, "momentum_buffer": gc.ones(2, 2)}, 1: {}},
                  "param_groups": [{"params": [0, 1], "lr": 0.1, "nesterov": False, "wd": None}]},
        "tied": w, "tuple": (1, "two", 3.0, (None,)), "list": [], "empty": {},
        "floats": [float("inf"), -float("inf"), -0.0, 1e-310, 0.1 + 0.2, math.pi],
        "nan": float("nan"), "big": 2 ** 100, "neg": -7, "text": "héllo \u2603 \ud800",
        "np": np.arange(3), "npscalar": np.float32(2.5), "dtype": gc.float64,
    }
    r = _roundtrip(obj)
    assert type(r["model"]) is OrderedDict and list(r["model"]) == ["layer.weight", "layer.bias"]
    _same(w, r["model"]["layer.weight"])
    assert r["tied"] is r["model"]["layer.weight"]  # one object saved twice loads as one
    assert list(r["optim"]["state"]) == [0, 1] and r["optim"]["state"][0]["step"] == 3
    assert r["optim"]["param_groups"] == [{"params": [0, 1], "lr": 0.1, "nesterov": False, "wd": None}]
    assert type(r["optim"]["param_groups"][0]["nesterov"]) is bool
    assert r["tuple"] == (1, "two", 3.0, (None,)) and r["list"] == [] and r["empty"] == {}
    assert [x.hex() for x in r["floats"]] == [x.hex() for x in obj["floats"]]  # exact, -0.0 too
    assert math.isnan(r["nan"]) and r["big"] == 2 ** 100 and r["neg"] == -7
    assert r["text"] == obj["text"]
    assert isinstance(r["np"], np.ndarray) and r["np"].tolist() == [0, 1, 2]
    assert r["npscalar"] == 2.5 and r["dtype"] is gc.float64


def test_requires_grad_and_parameters():
    t = gc.randn(3, requires_grad=True)
    r = _roundtrip({"t": t, "i": gc.tensor([1])})
    assert r["t"].requires_grad and r["t"].is_leaf and not r["i"].requires_grad
    from graphc.nn.parameter import Parameter
    p = Parameter(gc.randn(2))
    rp = _roundtrip([p])[0]
    assert isinstance(rp, Parameter) and rp.requires_grad
    _same(p.detach(), rp.detach())


def test_unsavable_objects():
    with pytest.raises(TypeError, match=r"obj\['f'\] of type function"):
        save({"f": lambda: 0}, io.BytesIO())
    with pytest.raises(TypeError, match="set"):
        save({1, 2}, io.BytesIO())
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="cycle"):
        save(loop, io.BytesIO())


def test_failed_save_keeps_old_file(tmp_path):
    p = tmp_path / "ckpt"
    save({"a": gc.ones(2)}, p)
    with pytest.raises(TypeError):
        save({"a": gc.zeros(2), "b": object()}, p)
    assert load(p)["a"].tolist() == [1.0, 1.0]
    assert [q.name for q in tmp_path.iterdir()] == ["ckpt"]


# ---- bad files --------------------------------------------------------------------------------------
@pytest.fixture
def good(tmp_path):
    p = tmp_path / "good.ckpt"
    save({"w": gc.randn(8, 8), "step": 5}, p)
    return p.read_bytes()


def test_corrupted_byte(good, tmp_path):
    for pos in (40, len(good) - 100, len(good) - 1):  # header, tensor data, checksum
        b = bytearray(good)
        b[pos] ^= 0x01
        with pytest.raises(CheckpointError, match=r"bad\.ckpt: checksum mismatch"):
            _load_bytes(bytes(b), tmp_path)


def test_truncated(good, tmp_path):
    for n in (0, 3, 20, 100, len(good) - 1):
        with pytest.raises(CheckpointError) as ei:
            _load_bytes(good[:n], tmp_path)
        msg = str(ei.value)
        assert "bad.ckpt" in msg
        assert ("empty file" in msg) if n == 0 else (f"truncated at byte {n}" in msg)
    with pytest.raises(CheckpointError, match="trailing bytes"):
        _load_bytes(good + b"\0", tmp_path)


def test_wrong_magic_and_version(good, tmp_path):
    with pytest.raises(CheckpointError, match="bad magic"):
        _load_bytes(b"GGUF" + good[4:], tmp_path)
    with pytest.raises(CheckpointError, match="bad magic"):
        _load_bytes(b"hello world, this is text\n" * 4, tmp_path)
    with pytest.raises(CheckpointError, match="unsupported checkpoint format version 2"):
        _load_bytes(_container({"format": "graphc.checkpoint", "tensors": [], "root": 1}, version=2),
                    tmp_path)


def test_tampered_header(good, tmp_path):
    # edited without fixing the checksum
    b = good.replace(b'"step"', b'"stop"')
    assert b != good
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        _load_bytes(b, tmp_path)
    # edited and re-checksummed: the structure is still validated before anything is built
    entry = {"dtype": "float32", "shape": [4], "offset": 0, "nbytes": 16, "kind": "tensor",
             "requires_grad": False}
    root = {"$": "tensor", "id": 0}

    def bad(header, data=bytes(16), match=""):
        with pytest.raises(CheckpointError, match=match):
            _load_bytes(_container(dict({"format": "graphc.checkpoint", "root": root}, **header), data),
                        tmp_path)
    assert _load_bytes(_container({"format": "graphc.checkpoint", "tensors": [entry], "root": root},
                                  bytes(16)), tmp_path).tolist() == [0.0] * 4
    bad({"tensors": [dict(entry, offset=8)]}, match=r"out of range of the 16-byte data section")
    bad({"tensors": [dict(entry, nbytes=12)]}, match="declares 12 bytes but needs 16")
    bad({"tensors": [dict(entry, dtype="complex64")]}, match="unsupported dtype 'complex64'")
    bad({"tensors": [dict(entry, shape=[-4])]}, match="malformed shape")
    bad({"tensors": []}, match="reference to tensor 0")
    bad({"tensors": [entry], "root": {"$": "tuple"}}, match="without items")
    bad({"tensors": [entry], "root": {"$": "dict", "items": [[{"$": "list", "items": []}, 1]]}},
        match="unhashable")
    bad({"tensors": [entry], "root": 1.5}, match="floats are stored as hex")
    bad({"tensors": [entry], "format": "other"}, match="not a graphc.checkpoint header")


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def _touch(path):
    open(path, "w").close()


def test_pickle_payload_rejected(tmp_path):
    marker = tmp_path / "pwned"
    for proto in (2, 4, 5):
        with pytest.raises(CheckpointError, match="pickle, which graphc.load never unpickles"):
            _load_bytes(pickle.dumps(_Evil(str(marker)), protocol=proto), tmp_path)
    with pytest.raises(CheckpointError, match="bad magic"):
        _load_bytes(pickle.dumps(_Evil(str(marker)), protocol=0), tmp_path)
    # a pickle smuggled into a well-formed container is just an unknown node
    payload = pickle.dumps(_Evil(str(marker))).hex()
    with pytest.raises(CheckpointError, match="unknown node kind 'pickle'"):
        _load_bytes(_container({"format": "graphc.checkpoint", "tensors": [],
                                "root": {"$": "pickle", "data": payload}}), tmp_path)
    assert not marker.exists()


def test_torch_checkpoint_rejected(tmp_path):
    torch = pytest.importorskip("torch")
    p = tmp_path / "torch.pt"
    torch.save({"w": torch.zeros(2)}, p)
    with pytest.raises(CheckpointError, match="zip archive"):
        load(p)


def test_text_mode_file_object(tmp_path, good):
    p = tmp_path / "g.ckpt"
    p.write_bytes(good)
    with open(p, "r", encoding="latin-1") as f:
        with pytest.raises(CheckpointError, match="text mode"):
            load(f)
    with open(p, "rb") as f:
        assert load(f)["step"] == 5
    assert os.path.exists(p)


def test_model_and_optimizer_checkpoint(tmp_path):
    nn, optim = gc.nn, gc.optim
    if not hasattr(nn, "Linear") or not hasattr(optim, "SGD"):
        pytest.skip("graphc.nn.Linear / graphc.optim.SGD not available")
    m = nn.Linear(3, 2)
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(gc.randn(4, 3)).sum().backward()
    opt.step()
    p = tmp_path / "train.ckpt"
    save({"model": m.state_dict(), "optim": opt.state_dict(), "epoch": 3}, p)
    ck = load(p)
    m2 = nn.Linear(3, 2)
    opt2 = optim.SGD(m2.parameters(), lr=0.5, momentum=0.9)
    m2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optim"])
    assert ck["epoch"] == 3 and opt2.param_groups[0]["lr"] == 0.1
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        np.testing.assert_array_equal(a._data, b._data, err_msg=k)
