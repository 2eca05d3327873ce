"""What makes save() to a path atomic: a temporary of fixed-length name in the target's
directory, locked while written, renamed into place, the directory fsynced; and the sweep that
removes temporaries a killed writer left behind (`_sweep_stale`)."""
from __future__ import annotations

import os
import re
import secrets
import stat
import time

# Temporaries: ".gc-" + 8 lowercase hex digits + ".tmp" (16 characters whatever the target's name).
_TMP_PREFIX, _TMP_SUFFIX = ".gc-", ".tmp"
_TMP_RE = re.compile(r"\.gc-[0-9a-f]{8}\.tmp")
_STALE_AGE_S = 3600.0   # a temporary not modified for this long may be a killed writer's


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
