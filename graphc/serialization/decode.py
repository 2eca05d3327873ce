"""load: a checkpoint's bytes checked in full (preamble, digest, header, every entry's shape,
dtype and byte range) before any tensor is built; every problem a CheckpointError."""
from __future__ import annotations

import hashlib
import json
import math
import os
from collections import OrderedDict

import numpy as np

from .. import dtypes as _dt
from ..tensor import Tensor
from .format import (_DIGEST, _FORMAT, _INTP_MAX, _MAX_NDIM, _PREAMBLE, MAGIC, VERSION,
                     CheckpointError, _align)


def load(f, map_location=None, *, weights_only=True, mmap=None):
    """Load what save() wrote, from a path or a binary file object. Tensors are fresh and
    writable. map_location / weights_only are accepted for torch compatibility (graphc is
    CPU-only, and a graphc checkpoint can only ever hold data)."""
    if isinstance(f, (str, os.PathLike)):
        name = os.fspath(f)
        with open(name, "rb") as fh:
            buf = fh.read()
    else:
        name = getattr(f, "name", None) or "<file object>"
        buf = f.read()
        if isinstance(buf, str):
            raise CheckpointError(f"{name}: file object is open in text mode; open it with 'rb'")
    return _Decoder(buf, str(name)).run()


class _Decoder:
    def __init__(self, buf: bytes, name: str):
        self.buf, self.name = memoryview(buf), name

    def fail(self, what):
        raise CheckpointError(f"{self.name}: {what}")

    def run(self):
        buf, n = self.buf, len(self.buf)
        if n == 0:
            self.fail("empty file, not a graphc checkpoint")
        if bytes(buf[:min(n, 8)]) != MAGIC[:min(n, 8)] or n < 8:
            self.fail(_foreign(bytes(buf[:8]), n))
        if n < _PREAMBLE.size:
            self.fail(f"truncated at byte {n}: the file ends inside the {_PREAMBLE.size}-byte preamble")
        _, version, flags, header_len, data_len = _PREAMBLE.unpack_from(buf, 0)
        if version != VERSION:
            self.fail(f"unsupported checkpoint format version {version} (this graphc reads version {VERSION})")
        if flags != 0:
            self.fail(f"unsupported flags 0x{flags:x} in the preamble")
        data_at = _align(_PREAMBLE.size + header_len)
        total = data_at + data_len + _DIGEST
        if n < total:
            self.fail(f"truncated at byte {n}: the preamble declares {total} bytes "
                      f"({header_len} header, {data_len} data)")
        if n > total:
            self.fail(f"{n - total} unexpected trailing bytes after the checksum (file is {n} bytes, "
                      f"the preamble declares {total})")
        if hashlib.sha256(buf[:total - _DIGEST]).digest() != bytes(buf[total - _DIGEST:]):
            self.fail("checksum mismatch: the file is corrupt or was modified after it was written")
        self.data = buf[data_at:data_at + data_len]
        try:
            header = json.loads(bytes(buf[_PREAMBLE.size:_PREAMBLE.size + header_len]).decode("utf-8"),
                                parse_float=_no_float, parse_constant=_no_float)
        except (UnicodeDecodeError, ValueError) as e:
            self.fail(f"header is not valid JSON: {e}")
        except RecursionError:
            self.fail("header nests too deeply")
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            self.fail(f"header is not a {_FORMAT} header")
        if not isinstance(header.get("tensors"), list) or "root" not in header:
            self.fail("malformed header: it needs 'tensors' (a list) and 'root'")
        self.entries = [self._entry(i, e) for i, e in enumerate(header["tensors"])]
        self._check_disjoint()
        self.built = {}
        self.budget = len(self.data)   # bytes of tensors load() may still build
        try:
            return self.node(header["root"])
        except RecursionError:
            self.fail("header nests too deeply")

    def _entry(self, i, e):
        if not isinstance(e, dict):
            self.fail(f"malformed header: tensor {i} is not an object")
        dtype, shape = e.get("dtype"), e.get("shape")
        offset, nbytes = e.get("offset"), e.get("nbytes")
        kind, rg = e.get("kind", "tensor"), e.get("requires_grad", False)
        if dtype not in ("float32", "float64", "int64", "bool"):
            self.fail(f"tensor {i} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            self.fail(f"tensor {i} has a malformed shape {_short(shape)}")
        if len(shape) > _MAX_NDIM:
            self.fail(f"tensor {i} has {len(shape)} dims (numpy builds at most {_MAX_NDIM})")
        if any(s > _INTP_MAX for s in shape):
            self.fail(f"tensor {i} has a dim >= 2**63 in its shape {_short(shape)}")
        if not (_is_int(offset) and _is_int(nbytes) and offset >= 0 and nbytes >= 0):
            self.fail(f"tensor {i} has a malformed offset/nbytes ({offset!r}, {nbytes!r})")
        if kind not in ("tensor", "parameter", "ndarray") or not isinstance(rg, bool):
            self.fail(f"tensor {i} has a malformed kind/requires_grad ({kind!r}, {rg!r})")
        d = _dt.from_name(dtype)
        if math.prod(s for s in shape if s) * d.itemsize > _INTP_MAX:  # numpy's own limit
            self.fail(f"tensor {i} ({dtype}{_short(shape)}) is too big for numpy to build: its "
                      "nonzero dims times the itemsize exceed 2**63 - 1 bytes")
        want = math.prod(shape) * d.itemsize
        if nbytes != want:
            self.fail(f"tensor {i} ({dtype}{_short(shape)}) declares {nbytes} bytes but needs {want}")
        if offset + nbytes > len(self.data):
            self.fail(f"tensor {i} ({dtype}{_short(shape)}) at bytes [{offset}, {offset + nbytes}) is "
                      f"out of range of the {len(self.data)}-byte data section")
        return d, tuple(shape), offset, nbytes, kind, rg

    def _check_disjoint(self):
        """Entries holding data must use disjoint byte ranges, as save writes them; so the tensors
        built can't add up to more than the data section, whatever the header says."""
        spans = sorted((e[2], e[2] + e[3], i) for i, e in enumerate(self.entries) if e[3] > 0)
        total = 0
        for (a0, a1, ai), (b0, b1, bi) in zip(spans, spans[1:]):
            if b0 < a1:
                if bi < ai:
                    (a0, a1, ai), (b0, b1, bi) = (b0, b1, bi), (a0, a1, ai)
                self.fail(f"tensors {ai} and {bi} overlap in the data section (bytes [{a0}, {a1}) and "
                          f"[{b0}, {b1})); graphc.save never writes overlapping tensors")
        for a0, a1, _ in spans:
            total += a1 - a0
        if total > len(self.data):  # implied by the above; kept as the bound that matters
            self.fail(f"the tensors declare {total} bytes but the data section has {len(self.data)}")

    def tensor(self, i):
        if not _is_int(i) or not 0 <= i < len(self.entries):
            self.fail(f"malformed header: reference to tensor {i!r}, but there are {len(self.entries)}")
        if i in self.built:
            return self.built[i]
        d, shape, offset, nbytes, kind, rg = self.entries[i]
        self.budget -= nbytes
        if self.budget < 0:
            self.fail(f"tensor {i} would take the tensors built past the {len(self.data)}-byte data section")
        raw = self.data[offset:offset + nbytes]
        try:
            if d.np == np.bool_:
                arr = np.frombuffer(raw, dtype=np.uint8) != 0   # any nonzero byte is True
            else:
                arr = np.frombuffer(raw, dtype=d.np.newbyteorder("<")).astype(d.np)  # a fresh copy
            arr = arr.reshape(shape)
        except (ValueError, OverflowError) as e:   # the checks above should make this unreachable
            self.fail(f"tensor {i} ({d.name}{_short(list(shape))}) can't be built: {e}")
        if kind == "ndarray":
            out = arr
        else:
            out = Tensor._wrap(arr)
            if kind == "parameter":
                out = _parameter(out, rg and d.is_floating_point)
            elif rg and d.is_floating_point:
                out.requires_grad_(True)
        self.built[i] = out
        return out

    def node(self, x):
        if x is None or isinstance(x, (bool, str)) or _is_int(x):
            return x
        if not isinstance(x, dict):
            self.fail(f"malformed header: unexpected {type(x).__name__} node")
        tag = x.get("$")
        if tag == "float":
            try:
                return float.fromhex(x.get("v"))
            except (TypeError, ValueError):
                self.fail(f"malformed header: bad float {x.get('v')!r}")
        if tag == "tensor":
            return self.tensor(x.get("id"))
        if tag == "dtype":
            try:
                return _dt.from_name(x.get("name"))
            except (TypeError, KeyError):
                self.fail(f"malformed header: unknown dtype {x.get('name')!r}")
        items = x.get("items")
        if tag in ("list", "tuple"):
            if not isinstance(items, list):
                self.fail(f"malformed header: {tag} without items")
            vals = [self.node(v) for v in items]
            return vals if tag == "list" else tuple(vals)
        if tag in ("dict", "odict"):
            if not isinstance(items, list) or not all(isinstance(p, list) and len(p) == 2 for p in items):
                self.fail(f"malformed header: {tag} items must be [key, value] pairs")
            out = OrderedDict() if tag == "odict" else {}
            for k, v in items:
                key = self.node(k)
                try:
                    out[key] = self.node(v)
                except TypeError:
                    self.fail(f"malformed header: unhashable dict key {key!r}")
            return out
        self.fail(f"malformed header: unknown node kind {tag!r} (graphc checkpoints hold only data)")


def _parameter(t, requires_grad):
    try:
        from ..nn.parameter import Parameter
    except Exception:
        return t.requires_grad_(True) if requires_grad else t
    return Parameter(t, requires_grad=requires_grad)


def _short(x, limit=120) -> str:
    """repr(x), cut short: a hostile shape can be megabytes of JSON."""
    r = repr(x)
    return r if len(r) <= limit else r[:limit] + f"... ({len(r)} characters)"


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _no_float(s):
    raise ValueError(f"unexpected number {s} (floats are stored as hex strings)")


def _foreign(head: bytes, n: int) -> str:
    """Say what the file looks like, to make 'bad magic' actionable."""
    what = ""
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        what = ("; it looks like a Python pickle, which graphc.load never unpickles "
                "(unpickling can run arbitrary code)")
    elif head[:4] == b"PK\x03\x04":
        what = "; it looks like a zip archive (torch.save's format?), which graphc.load does not read"
    elif n < 8 and MAGIC.startswith(head):
        return f"truncated at byte {n}: the file ends inside the magic bytes"
    return f"not a graphc checkpoint: bad magic bytes {head!r} (expected {MAGIC!r}){what}"
