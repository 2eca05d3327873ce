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

import os

from .atomic import (_STALE_AGE_S, _TMP_PREFIX, _TMP_RE, _TMP_SUFFIX, _create_temp,  # noqa: F401
                     _fsync_dir, _lock, _sweep_stale, _umask)
from .decode import _Decoder, _foreign, _is_int, _no_float, _parameter, _short, load  # noqa: F401
from .encode import _Encoder, _emit, _encode, _is_parameter  # noqa: F401
from .format import (_ALIGN, _DIGEST, _FORMAT, _INTP_MAX, _MAX_NDIM, _PREAMBLE,  # noqa: F401
                     MAGIC, VERSION, CheckpointError, _align, _numpy_max_ndim)

# save and _write live here and call `_emit` through this module, where tests patch it


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


def _write(obj, f) -> None:
    _emit(*_encode(obj), f)


__all__ = ["save", "load", "CheckpointError", "MAGIC", "VERSION"]
