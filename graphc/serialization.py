"""graphc.save / graphc.load: checkpoints that can't run code when loaded.

There is no pickle here. A checkpoint is a small container whose object tree is JSON:

    offset 0   magic      8 bytes  b"\\x89GCKPT\\r\\n"  (PNG-style: catches text-mode mangling)
           8   version    u32 LE   1
          12   flags      u32 LE   0 (reserved)
          16   header_len u64 LE   bytes of UTF-8 JSON that follow
          24   data_len   u64 LE   bytes of tensor data
          32   header     JSON     {"format": "graphc.checkpoint", "tensors": [...], "root": node}
               zero padding to a multiple of 64
     data_at   data       raw little-endian tensor bytes, each tensor 64-byte aligned
    data_at+data_len  sha256 32 bytes  of everything before it

Tensor data is always stored from the host: a cuda tensor is copied to the host when saved, and
load() returns CPU tensors (torch's map_location="cpu"); `model.load_state_dict` copies them onto
the model's device.

A tensors[] entry is {"dtype", "shape", "offset", "nbytes", "kind", "requires_grad"}
(offset relative to data_at; kind is tensor, parameter or ndarray). A node is a JSON null,
true/false, int or string, or an object tagged by "$": float (hex text, exact, nan/inf
included), list, tuple, dict/odict (a list of [key, value] pairs, so keys keep their type),
tensor (an index into tensors[]; the same object saved twice loads as one object) or dtype.

Everything is checked before anything is built: a foreign, truncated, corrupt, tampered or
hostile file raises CheckpointError naming the file and what is wrong, never numpy's
ValueError/OverflowError/MemoryError. In particular every shape is one numpy can build (at most
numpy's maximum number of dims, each dim an int in [0, 2**63), itemsize times the product of the
nonzero dims below 2**63) whose byte count equals the entry's nbytes; and the byte ranges of the
entries that hold data never overlap (save never writes overlapping ranges), so load() builds at
most data_len bytes of tensors however many entries or references the header has.

save() writes a temporary file in the target's directory and renames it into place, so a crash
never leaves half a checkpoint. The temporary's name has a fixed length (".gc-" + 8 hex digits +
".tmp", 16 characters), so any name the file system accepts can be saved to; see _sweep_stale for
how temporaries left behind by a killed writer are removed.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import stat
import struct
import time
from collections import OrderedDict

import numpy as np

from . import dtypes as _dt
from .tensor import Tensor

MAGIC = b"\x89GCKPT\r\n"
VERSION = 1
_PREAMBLE = struct.Struct("<8sIIQQ")
_ALIGN = 64
_DIGEST = 32
_FORMAT = "graphc.checkpoint"
_INTP_MAX = int(np.iinfo(np.intp).max)   # numpy's limit on a dim and on an array's byte size


def _numpy_max_ndim() -> int:
    for n in (64, 32):               # numpy >= 2 builds up to 64 dims, numpy 1.x up to 32
        try:
            np.empty((0,) * n)
            return n
        except ValueError:
            pass
    return 32


_MAX_NDIM = _numpy_max_ndim()


class CheckpointError(RuntimeError):
    """A file graphc.load can't accept: not a checkpoint, truncated, corrupt or malformed."""


def _align(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


# ---- save ----------------------------------------------------------------------------------------
class _Encoder:
    """Object tree -> JSON-able nodes, collecting tensor data along the way."""

    def __init__(self):
        self.entries, self.arrays = [], []
        self._memo = {}      # id(tensor or array) -> index in entries
        self._stack = set()  # ids of containers being encoded, to reject cycles
        self._size = 0

    def encode(self, obj, where="obj"):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            return {"$": "float", "v": float(obj).hex()}
        if isinstance(obj, (Tensor, np.ndarray)):
            return {"$": "tensor", "id": self._tensor(obj, where)}
        if isinstance(obj, _dt.DType):
            return {"$": "dtype", "name": obj.name}
        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
            return self.encode(obj.item(), where)
        if isinstance(obj, (list, tuple, dict)):
            if id(obj) in self._stack:
                raise ValueError(f"graphc.save: {where} contains itself (a reference cycle)")
            self._stack.add(id(obj))
            try:
                if isinstance(obj, dict):
                    tag = "odict" if isinstance(obj, OrderedDict) else "dict"
                    items = [[self.encode(k, f"{where} key {k!r}"), self.encode(v, f"{where}[{k!r}]")]
                             for k, v in obj.items()]
                    return {"$": tag, "items": items}
                tag = "list" if isinstance(obj, list) else "tuple"  # namedtuples and Size save as tuples
                return {"$": tag, "items": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
            finally:
                self._stack.discard(id(obj))
        raise TypeError(f"graphc.save can't store {where} of type {type(obj).__qualname__}: checkpoints "
                        "hold tensors, numpy arrays, dicts, lists, tuples, str, int, float, bool and None")

    def _tensor(self, obj, where):
        key = id(obj)
        if key in self._memo:
            return self._memo[key]
        if isinstance(obj, Tensor):
            if obj._data is None:
                raise TypeError(f"graphc.save: {where} is a tensor being traced by graphc.compile; "
                                "save real tensors outside the compiled function")
            arr, dtype = obj._host(), obj.dtype       # a cuda tensor's data is copied to the host
            kind = "parameter" if _is_parameter(obj) else "tensor"
            rg = bool(obj.requires_grad)
        else:
            try:
                dtype = _dt.from_numpy(obj.dtype)
            except TypeError as e:
                raise TypeError(f"graphc.save: {where}: {e}") from None
            arr, kind, rg = obj, "ndarray", False
        le = np.ascontiguousarray(arr, dtype=dtype.np.newbyteorder("<"))
        offset = _align(self._size)
        self._size = offset + le.nbytes
        self.entries.append({"dtype": dtype.name, "shape": list(arr.shape), "offset": offset,
                             "nbytes": le.nbytes, "kind": kind, "requires_grad": rg})
        self.arrays.append((offset, le))
        self._memo[key] = len(self.entries) - 1
        return self._memo[key]


def _is_parameter(t) -> bool:
    try:
        from .nn.parameter import Parameter
    except Exception:
        return False
    return isinstance(t, Parameter)


def _encode(obj):
    enc = _Encoder()
    root = enc.encode(obj)
    header = json.dumps({"format": _FORMAT, "tensors": enc.entries, "root": root},
                        separators=(",", ":"), allow_nan=False).encode("utf-8")
    return header, enc


def _emit(header, enc, f) -> None:
    digest = hashlib.sha256()

    def put(b):
        digest.update(b)
        f.write(b)

    data_len = enc._size
    put(_PREAMBLE.pack(MAGIC, VERSION, 0, len(header), data_len))
    put(header)
    put(bytes(_align(_PREAMBLE.size + len(header)) - _PREAMBLE.size - len(header)))
    pos = 0
    for offset, arr in enc.arrays:
        put(bytes(offset - pos))
        put(arr.reshape(-1).view(np.uint8))
        pos = offset + arr.nbytes
    f.write(digest.digest())


def _write(obj, f) -> None:
    _emit(*_encode(obj), f)


# Temporaries: ".gc-" + 8 lowercase hex digits + ".tmp" (16 characters whatever the target's name).
_TMP_PREFIX, _TMP_SUFFIX = ".gc-", ".tmp"
_TMP_RE = re.compile(r"\.gc-[0-9a-f]{8}\.tmp")
_STALE_AGE_S = 3600.0   # a temporary not modified for this long may be a killed writer's


def save(obj, f) -> None:
    """Save tensors, state_dicts and nested dicts/lists/tuples of them with Python scalars,
    strings and None, to a path (written atomically) or a binary file object.

    To a path: the object is encoded first, then written to a temporary ".gc-XXXXXXXX.tmp" in
    the target's directory (16 characters, so a target name of any length the file system
    accepts works), fsynced, and renamed over the target; on any error the temporary is removed
    and an existing target is untouched. Before the temporary is created the directory is swept
    of temporaries that a killed writer left behind (see _sweep_stale), so their space is free
    for this one."""
    if not isinstance(f, (str, os.PathLike)):
        _write(obj, f)
        return
    path = os.fspath(f)
    directory = os.path.dirname(os.path.abspath(path))
    header, enc = _encode(obj)   # before the temporary exists: a bad object leaves nothing behind
    _sweep_stale(directory, legacy_for=os.path.basename(path))
    fd, tmp = _create_temp(directory)
    try:
        _lock(fd)                # held until the rename: tells _sweep_stale this writer is alive
        with os.fdopen(fd, "wb") as out:
            fd = None
            _emit(header, enc, out)
            out.flush()
            os.fsync(out.fileno())
            mode = 0o666 & ~_umask()
            if hasattr(os, "fchmod"):
                os.fchmod(out.fileno(), mode)
            else:
                os.chmod(tmp, mode)
            if os.name != "nt":  # Windows can't rename an open file; elsewhere keep the lock
                os.replace(tmp, path)
        if os.name == "nt":
            os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _create_temp(directory):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f"{_TMP_PREFIX}{secrets.token_hex(4)}{_TMP_SUFFIX}")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"graphc.save: could not create a temporary file in {directory!r}")


def _lock(fd, blocking=True) -> bool:
    """Take an exclusive flock on fd. False only if another open file holds one (non-blocking);
    True where it was taken or where locks are unavailable (no fcntl, or a file system without
    flock): then only _sweep_stale's age rule tells a live writer from a dead one."""
    try:
        import fcntl
    except ImportError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True


def _sweep_stale(directory, now=None, legacy_for=None) -> list:
    """Remove temporaries of save() that a killed writer left in `directory`; best effort, never
    raises. Returns the names removed.

    A temporary's name doesn't say which target it was for, and another process may be saving
    into the same directory right now (to this target or another), so "all temporaries for this
    target" is neither knowable nor safe. A candidate is removed only if all of these hold:
      - its name is exactly ".gc-" + 8 lowercase hex digits + ".tmp" and it is a regular file
        (not a symlink) that this process can open;
      - it has not been modified for _STALE_AGE_S (an hour): a live writer creates its temporary
        only once the object is encoded and then keeps writing to it until the rename, so its
        mtime is recent; this also covers the instant between a writer's create and its lock;
      - where flock exists, an exclusive non-blocking lock on it succeeds: a live writer holds
        one until it has renamed the file, and the kernel drops it when the writer dies;
      - it is still the same file (device and inode) when it is unlinked.
    Hence a concurrent writer's temporary is never removed, on file systems where flock works
    (local ones, NFS via byte-range locks); elsewhere only the age rule protects a writer that
    stalls for over an hour between two writes.

    legacy_for=NAME also removes, by the same rules, the temporaries ".NAME.XXXXXXXX.tmp" that
    earlier graphc versions (tempfile.mkstemp) left for that target."""
    removed = []
    now = time.time() if now is None else now
    legacy = None
    if legacy_for:
        legacy = re.compile(r"\." + re.escape(legacy_for) + r"\.[a-z0-9_]{8}\.tmp")
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for de in entries:
        if not (_TMP_RE.fullmatch(de.name) or (legacy is not None and legacy.fullmatch(de.name))):
            continue
        try:
            st = de.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < _STALE_AGE_S:
                continue
            fd = os.open(de.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            if not _lock(fd, blocking=False):
                continue                         # a live writer holds it
            st2 = os.fstat(fd)
            if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino) or now - st2.st_mtime < _STALE_AGE_S:
                continue
            cur = os.stat(de.path, follow_symlinks=False)
            if (cur.st_dev, cur.st_ino) != (st.st_dev, st.st_ino):
                continue
            os.unlink(de.path)
            removed.append(de.name)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _umask() -> int:
    try:  # read it without changing it (os.umask sets it, which races with other threads)
        with open("/proc/self/status") as s:
            for line in s:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _fsync_dir(directory) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- load ----------------------------------------------------------------------------------------
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
        from .nn.parameter import Parameter
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


__all__ = ["save", "load", "CheckpointError", "MAGIC", "VERSION"]
