"""graphc.load against hostile checkpoints (issue 13), and save()'s temporary files.

The hostile files are built by hand from the layout documented in graphc/serialization.py, with a
valid checksum, so every case reaches the structural checks. Each must raise CheckpointError naming
the file, quickly and without allocating more than the file's data section.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numpy as np
import pytest

import graphc as gc
from graphc import serialization as ser
from graphc.serialization import MAGIC, CheckpointError, load, save

from repo_paths import ROOT  # noqa: E402


def _container(header: dict, data: bytes = b"") -> bytes:
    hb = json.dumps(header).encode()
    pre = struct.pack("<8sIIQQ", MAGIC, 1, 0, len(hb), len(data))
    pad = b"\0" * (-(len(pre) + len(hb)) % 64)
    body = pre + hb + pad + data
    return body + hashlib.sha256(body).digest()


def _entry(shape, dtype="float32", offset=0, nbytes=None, kind="tensor"):
    if nbytes is None:
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(dtype if dtype != "bool" else "u1").itemsize
    return {"dtype": dtype, "shape": list(shape), "offset": offset, "nbytes": nbytes, "kind": kind,
            "requires_grad": False}


def _file(tmp_path, entries, data=b"", root=None, name="hostile.ckpt"):
    if root is None:
        root = {"$": "list", "items": [{"$": "tensor", "id": i} for i in range(len(entries))]}
    p = tmp_path / name
    p.write_bytes(_container({"format": "graphc.checkpoint", "tensors": entries, "root": root}, data))
    return p


def _rejects(p, match):
    with pytest.raises(CheckpointError, match=match) as ei:
        load(p)
    assert str(ei.value).startswith(f"{p}: ")
    return str(ei.value)


# ---- overlapping data ranges --------------------------------------------------------------------
def test_aliased_entries_rejected_without_allocating(tmp_path):
    """2,000 entries at the same 16 KiB: the old loader built 2,000 copies (32 MiB here)."""
    n = 4096
    p = _file(tmp_path, [_entry([n]) for _ in range(2000)], bytes(4 * n))
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        _rejects(p, r"tensors \d+ and \d+ overlap in the data section")
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak
    assert elapsed < 5, elapsed


_ISSUE_CASE = textwrap.dedent("""
    import hashlib, json, resource, struct, sys, time, tracemalloc
    import graphc
    from graphc.serialization import MAGIC, CheckpointError, load
    n = 1 << 20                                    # a 4 MiB float32 tensor, 2,000 entries at it
    e = {"dtype": "float32", "shape": [n], "offset": 0, "nbytes": 4 * n, "kind": "tensor",
         "requires_grad": False}
    hb = json.dumps({"format": "graphc.checkpoint", "tensors": [e] * 2000,
                     "root": {"$": "list", "items": [{"$": "tensor", "id": i} for i in range(2000)]}}).encode()
    data = bytes(4 * n)
    body = struct.pack("<8sIIQQ", MAGIC, 1, 0, len(hb), len(data)) + hb + bytes(-(32 + len(hb)) % 64) + data
    path = sys.argv[1]
    open(path, "wb").write(body + hashlib.sha256(body).digest())
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            vm = int(line.split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.getrlimit(resource.RLIMIT_AS)[1]))
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        load(path)
        print("LOADED")
    except CheckpointError as err:
        print("REJECTED", time.perf_counter() - t0, tracemalloc.get_traced_memory()[1], err)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and RLIMIT_AS")
def test_issue_case_4mib_file_2000_entries(tmp_path):
    """The issue's file: 4 MiB of data, 2,000 entries at it (8 GiB if built). Run in a child
    process capped at 1 GiB more address space, so the old loader fails with MemoryError there
    instead of taking the machine's memory."""
    p = tmp_path / "alias.ckpt"
    r = subprocess.run([sys.executable, "-c", _ISSUE_CASE, str(p)], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    out = r.stdout.strip().splitlines()
    assert r.returncode == 0 and out and out[-1].startswith("REJECTED"), (r.stdout, r.stderr[-2000:])
    _, elapsed, peak, msg = out[-1].split(" ", 3)
    assert msg.startswith(f"{p}: ") and "overlap" in msg
    assert float(elapsed) < 10 and int(peak) < 64 * 2**20, out[-1]


@pytest.mark.parametrize("second", [
    dict(offset=0),                 # the same range twice
    dict(offset=64),                # starts inside the first
    dict(offset=0, shape=[4]),      # a prefix of the first
], ids=["duplicate", "partial", "prefix"])
def test_overlapping_ranges_rejected(tmp_path, second):
    first = _entry([64])                                # bytes [0, 256)
    e2 = _entry(second.get("shape", [16]), offset=second["offset"])
    _rejects(_file(tmp_path, [first, e2], bytes(256)), r"tensors 0 and 1 overlap")
    _rejects(_file(tmp_path, [e2, first], bytes(256)), r"tensors \d and \d overlap")


def test_one_entry_referenced_many_times_is_built_once(tmp_path):
    """Many references to one entry are one object (that's how tied weights load), not copies."""
    root = {"$": "list", "items": [{"$": "tensor", "id": 0}] * 2000}
    out = load(_file(tmp_path, [_entry([4096])], bytes(4 * 4096), root=root))
    assert len(out) == 2000 and all(t is out[0] for t in out)


def test_empty_tensors_may_share_an_offset(tmp_path):
    """save writes consecutive empty tensors at one offset: zero-byte ranges never overlap."""
    objs = [gc.zeros(0), gc.zeros(3, 0), np.zeros((0, 2)), gc.ones(3), gc.zeros(0)]
    p = tmp_path / "empties.ckpt"
    save(objs, p)
    r = load(p)
    assert [tuple(x.shape) for x in r] == [(0,), (3, 0), (0, 2), (3,), (0,)]
    assert r[3].tolist() == [1.0, 1.0, 1.0]
    # by hand: empty entries at the start, the middle and the end of a data entry's range
    es = [_entry([0], offset=0), _entry([4], offset=0), _entry([0], offset=8), _entry([0], offset=16)]
    assert [x.tolist() for x in load(_file(tmp_path, es, bytes(16)))] == [[], [0.0] * 4, [], []]


# ---- shapes numpy can't build -------------------------------------------------------------------
@pytest.mark.parametrize("shape,nbytes,match", [
    ([1] * 65, 4, r"65 dims \(numpy builds at most"),
    ([1] * 1000, 4, r"1000 dims"),
    ([2 ** 63], 0, r"a dim >= 2\*\*63"),
    ([0, 2 ** 63], 0, r"a dim >= 2\*\*63"),
    ([2 ** 64, 0], 0, r"a dim >= 2\*\*63"),
    ([10 ** 40, 0], 0, r"a dim >= 2\*\*63"),
    ([2 ** 40, 2 ** 40, 0], 0, r"too big for numpy to build"),
    ([0, 2 ** 40, 2 ** 40], 0, r"too big for numpy to build"),
    ([2 ** 61, 0], 0, r"too big for numpy to build"),      # 2**61 float32s: 2**63 bytes
    ([2 ** 62, 2, 2], 0, r"too big for numpy to build"),
], ids=["65dims", "1000dims", "2**63", "0x2**63", "2**64x0", "1e40x0", "2**40x2**40x0",
        "0x2**40x2**40", "2**61x0_f32", "2**62x2x2"])
def test_unbuildable_shapes_raise_checkpoint_error(tmp_path, shape, nbytes, match):
    msg = _rejects(_file(tmp_path, [_entry(shape, nbytes=nbytes)], bytes(8)), match)
    assert len(msg) < 400   # a huge shape is cut short in the message


def test_shapes_at_numpys_limits_load(tmp_path):
    nd = ser._MAX_NDIM
    es = [_entry([1] * nd), _entry([2 ** 63 - 1, 0], "bool"), _entry([0, 2 ** 61 - 1], offset=64),
          _entry([2 ** 30, 2 ** 29, 0], "float64", offset=64)]
    a, b, c, d = load(_file(tmp_path, es, bytes(64)))
    assert a.shape == (1,) * nd and b.shape == (2 ** 63 - 1, 0) and c.shape == (0, 2 ** 61 - 1)
    assert d.shape == (2 ** 30, 2 ** 29, 0)
    arr = np.arange(3.0).reshape((3,) + (1,) * (nd - 1))      # and save writes them
    p = tmp_path / "nd.ckpt"
    save({"a": arr}, p)
    np.testing.assert_array_equal(load(p)["a"], arr)


def test_every_load_error_is_a_checkpoint_error(tmp_path):
    """No hostile entry may escape as a numpy/Python error instead of CheckpointError."""
    cases = [dict(shape=[1] * 65, nbytes=4), dict(shape=[2 ** 63, 0], nbytes=0),
             dict(shape=[2 ** 40, 2 ** 40, 0], nbytes=0), dict(shape=[True, 2]), dict(shape=[2.0]),
             dict(shape="4"), dict(shape=[4], offset=2 ** 64), dict(shape=[4], nbytes=-16),
             dict(shape=[2 ** 62], nbytes=2 ** 64), dict(shape=[4], offset=-1)]
    for i, c in enumerate(cases):
        e = dict(_entry([4]), **c)
        with pytest.raises(CheckpointError):
            load(_file(tmp_path, [e], bytes(16), name=f"case{i}.ckpt"))


# ---- save: the temporary's name, and stale temporaries ------------------------------------------
@pytest.mark.parametrize("n", [242, 250, 255])
def test_long_file_names_roundtrip(tmp_path, n):
    if os.pathconf(tmp_path, "PC_NAME_MAX") < n:
        pytest.skip("file system names are shorter")
    p = tmp_path / ("m" * (n - 5) + ".ckpt")
    save({"w": gc.arange(3)}, p)
    assert load(p)["w"].tolist() == [0, 1, 2]
    save({"w": gc.arange(4)}, str(p))                         # over an existing file too
    assert load(p)["w"].tolist() == [0, 1, 2, 3]
    assert [q.name for q in tmp_path.iterdir()] == [p.name]


def test_temporary_name_is_short_and_fixed(tmp_path, monkeypatch):
    seen = []
    emit = ser._emit

    def spy(header, enc, f):
        seen.extend(q.name for q in tmp_path.iterdir())
        emit(header, enc, f)

    monkeypatch.setattr(ser, "_emit", spy)
    save({"x": 1}, tmp_path / ("long" * 60))
    assert len(seen) == 1 and ser._TMP_RE.fullmatch(seen[0]) and len(seen[0]) == 16, seen


def _leftover(directory, name, age_s):
    p = directory / name
    p.write_bytes(b"half a checkpoint")
    t = time.time() - age_s
    os.utime(p, (t, t))
    return p


def test_stale_temporary_is_cleaned(tmp_path):
    """A killed writer's temporary (over an hour old, unlocked) is removed by the next save."""
    stale = _leftover(tmp_path, ".gc-0123abcd.tmp", 2 * 3600)
    legacy = _leftover(tmp_path, ".model.ckpt.k3_x9qz1.tmp", 2 * 3600)  # the old mkstemp name
    save({"a": gc.ones(2)}, tmp_path / "model.ckpt")
    assert not stale.exists() and not legacy.exists()
    assert [q.name for q in tmp_path.iterdir()] == ["model.ckpt"]


def test_live_or_foreign_files_are_kept(tmp_path):
    fresh = _leftover(tmp_path, ".gc-00000001.tmp", 60)          # a concurrent writer's, mid-write
    keep = [fresh] + [_leftover(tmp_path, n, 2 * 3600) for n in (
        ".gc-0123ABCD.tmp", ".gc-0123abc.tmp", ".gc-0123abcde.tmp", "gc-0123abcd.tmp",
        ".gc-0123abcd.tmp.bak", ".other.ckpt.k3_x9qz1.tmp", "model.ckpt.k3_x9qz1.tmp")]
    os.mkdir(tmp_path / ".gc-0000dead.tmp")                        # not a regular file
    target = _leftover(tmp_path, "precious", 2 * 3600)
    os.symlink(target, tmp_path / ".gc-0000beef.tmp")              # a symlink: never followed
    save({"a": 1}, tmp_path / "model.ckpt")
    for p in keep + [target, tmp_path / ".gc-0000dead.tmp", tmp_path / ".gc-0000beef.tmp"]:
        assert os.path.lexists(p), p


def test_locked_old_temporary_is_kept(tmp_path):
    """An old temporary whose writer is still alive (it holds the flock) is not removed, even
    past the age limit: a writer stalled between two writes keeps its file."""
    fcntl = pytest.importorskip("fcntl")
    p = _leftover(tmp_path, ".gc-0badf00d.tmp", 2 * 3600)
    fd = os.open(p, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        save({"a": 1}, tmp_path / "x.ckpt")
        assert p.exists()
    finally:
        os.close(fd)
    save({"a": 2}, tmp_path / "x.ckpt")                             # the writer died: now it goes
    assert not p.exists()


def test_writer_holds_lock_until_rename(tmp_path, monkeypatch):
    """During save, a sweep (e.g. by another process's save) can't take the temporary."""
    swept = []
    emit = ser._emit

    def spy(header, enc, f):
        emit(header, enc, f)
        swept.append(ser._sweep_stale(str(tmp_path), now=time.time() + 10 * 3600))

    monkeypatch.setattr(ser, "_emit", spy)
    save({"a": 1}, tmp_path / "y.ckpt")
    assert swept == [[]] and [q.name for q in tmp_path.iterdir()] == ["y.ckpt"]


def test_failed_save_leaves_no_temporary(tmp_path, monkeypatch):
    save({"a": gc.ones(2)}, tmp_path / "c.ckpt")

    def boom(header, enc, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ser, "_emit", boom)
    with pytest.raises(OSError, match="disk full"):
        save({"a": gc.zeros(2)}, tmp_path / "c.ckpt")
    assert [q.name for q in tmp_path.iterdir()] == ["c.ckpt"]
    assert load(tmp_path / "c.ckpt")["a"].tolist() == [1.0, 1.0]
