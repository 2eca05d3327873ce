"""The native-code disk cache: verified entries in a private directory.

The cache holds machine code that the process jumps into, so nothing is loaded unchecked:
every file starts with a header line holding the sha256 of (key, file kind, contents) and the
length, verified before the bytes reach MCJIT (a truncated, empty or corrupted entry is deleted
and recompiled, with a CacheWarning); and a cache directory that is not owned by this user
(or root) or that group/others can write is not used at all (see `_usable_dir`), as ssh
refuses such key files. The digest is not a signature: it catches corruption, and the
ownership/mode checks keep other users' files out."""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import warnings

from .settings import _log


class CacheWarning(RuntimeWarning):
    """The native-code disk cache was not used as asked: an entry failed verification (deleted
    and recompiled), or the cache directory is not safe to load code from (caching off)."""


# An entry is two files, <key>.ll (the optimised IR, for .llvm_ir) and <key>.o (object code, written
# last: it completes the entry). Each is one header line and the contents:
#     b"graphc-cache 1 sha256=<hex> len=<bytes>\n" + contents
# with the digest over (key, extension, contents): a file copied under another key does not verify.
_MAGIC = b"graphc-cache 1"
_WARNED = set()          # (directory, problem): an unusable directory is reported once per process


def _digest(key, ext, data):
    h = hashlib.sha256()
    for part in (_MAGIC, key.encode(), ext.encode()):
        h.update(part)
        h.update(b"\0")
    h.update(data)
    return h.hexdigest()


def _pack(key, ext, data):
    return b"%s sha256=%s len=%d\n" % (_MAGIC, _digest(key, ext, data).encode(), len(data)) + data


def _unpack(blob, key, ext):
    """(contents, None) when blob is a complete, intact entry for (key, ext), else (None, why)."""
    head, nl, data = blob.partition(b"\n")
    parts = head.split(b" ")
    if not nl or len(parts) != 4 or b" ".join(parts[:2]) != _MAGIC or not parts[2].startswith(b"sha256=") \
            or not parts[3].startswith(b"len="):
        return None, "empty file" if not blob else "no valid header (garbage, or written by another graphc)"
    try:
        n = int(parts[3][4:])
    except ValueError:
        return None, "no valid header"
    if len(data) != n:
        return None, f"truncated or extended ({len(data)} bytes, the header says {n})"
    if parts[2][7:].decode("ascii", "replace") != _digest(key, ext, data):
        return None, "sha256 mismatch (corrupted, or an entry of another key)"
    return data, None


def _unsafe(st, kind):
    """Why a cache directory or file with this stat result must not be trusted, or None.
    Like ssh with its keys: owned by this user (or root), not writable by group or others."""
    if kind == "directory" and not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if kind == "file" and not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not hasattr(os, "geteuid"):      # no POSIX owners and modes (Windows)
        return None
    uid = os.geteuid()
    if st.st_uid not in (uid, 0):
        return f"owned by uid {st.st_uid}, not by this user (uid {uid})"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):#o})"
    return None


def _usable_dir(d, create=False):
    """d if the disk cache may read (and, create=True, write) there, else None. A directory that
    someone else owns or can write is refused with a CacheWarning, once per process: whoever can
    write there could place any object under a key, and graphc would run it. A missing one is
    created 0700 when writing."""
    if d is None:
        return None
    try:
        st = os.stat(d)
    except FileNotFoundError:
        if not create:
            return None
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            st = os.stat(d)
        except OSError as e:     # a read-only home must not break compilation
            _log.info("llvm backend: could not create the object cache %s: %s", d, e)
            return None
    except OSError as e:
        _log.info("llvm backend: object cache %s: %s", d, e)
        return None
    problem = _unsafe(st, "directory")
    if problem is None:
        return d
    if (d, problem) not in _WARNED:
        _WARNED.add((d, problem))
        msg = (f"graphc: not using the native-code cache {d}: {problem}; anyone who can write "
               f"there could make graphc run their code. Compiling without a disk cache; use a "
               f"private directory (chmod 700, owned by you) or GRAPHC_CACHE_DIR=off")
        _log.info("llvm backend: %s", msg)
        warnings.warn(msg, CacheWarning, stacklevel=2)
    return None


def _reject(path, why):
    """A cache file that failed verification: say so, delete it (it is recompiled and rewritten)."""
    msg = f"graphc: native-code cache entry {path} rejected: {why}; deleted, recompiling"
    _log.info("llvm backend: %s", msg)
    warnings.warn(msg, CacheWarning, stacklevel=3)
    try:
        os.unlink(path)
    except OSError:
        pass


def _cache_read(d, key, ext=".o"):
    """The verified contents of a cache file (bytes), or None: no cache, no entry, or an entry
    that failed its checks (then deleted, with a CacheWarning). Nothing unverified reaches MCJIT."""
    d = _usable_dir(d)
    if d is None:
        return None
    path = os.path.join(d, key + ext)
    try:     # O_NOFOLLOW: a symlink planted as an entry is not followed
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        _reject(path, f"cannot be opened ({e.strerror})")
        return None
    with os.fdopen(fd, "rb") as f:
        problem = _unsafe(os.fstat(f.fileno()), "file")     # of the file opened, not of a path
        blob = f.read() if problem is None else b""
    data, why = _unpack(blob, key, ext) if problem is None else (None, problem)
    if why is not None:
        _reject(path, why)
    return data


def _cache_write(d, key, obj, ir_text):
    d = _usable_dir(d, create=True)
    if d is None:
        return
    try:
        for ext, data in ((".ll", ir_text.encode()), (".o", obj)):     # .o last: it marks the entry complete
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")           # mode 0600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(_pack(key, ext, data))
                os.replace(tmp, os.path.join(d, key + ext))
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
    except OSError as e:     # a full disk must not break compilation
        _log.info("llvm backend: could not write the object cache in %s: %s", d, e)
