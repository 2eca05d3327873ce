"""The llvm backend's native-code disk cache against corrupt and hostile files: every entry is
verified (sha256 over key and contents, length) before its bytes reach MCJIT, a bad one is
deleted and recompiled with a CacheWarning, and a cache directory that someone else owns or
can write is not used. Corruption cases run the victim in a subprocess, so that a crash shows
as a failed test, not a dead pytest."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("llvmlite")

import graphc as gc                                     # noqa: E402
from graphc.backends import get                         # noqa: E402
from graphc.backends.llvm import runtime as R           # noqa: E402
from graphc.ir import parse_graph                       # noqa: E402
from graphc.passes.manager import run_passes            # noqa: E402

from repo_paths import ROOT  # noqa: E402

G = """graph g(%x: f64[64], %y: f64[64]) {
  %0: f64[64] = exp(%x)
  %1: f64[64] = mul(%0, %y)
  %2: f64[] = sum(%1) {axes=(0,), keepdim=False}
  return %1, %2
}"""

# the victim: a compiled function (its graph, and the thread pool's runtime module, from the cache)
_VICTIM = """
import json, warnings, numpy as np
import graphc as gc
warnings.simplefilter("always")
def f(x, y):
    return (x.exp() * y).sum(), x.tanh() + y
f = gc.compile(f, backend="llvm")
x = np.linspace(-1, 1, 4096)
y = np.cos(np.arange(4096.0))
s, t = f(gc.tensor(x), gc.tensor(y))
ok = bool(np.allclose(s.item(), (np.exp(x) * y).sum()) and np.allclose(t.numpy(), np.tanh(x) + y))
exe = f.entry(gc.tensor(x), gc.tensor(y)).exe
print(json.dumps(dict(ok=ok, hit=exe.cache_hit)))
"""


def _victim(cache, **env):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache), GRAPHC_NUM_THREADS="2", GRAPHC_PAR_THRESHOLD="1024",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    r = subprocess.run([sys.executable, "-c", _VICTIM], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"victim died (rc {r.returncode}):\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


def _objects(cache):
    return sorted(os.path.join(cache, n) for n in os.listdir(cache) if n.endswith(".o"))


def _truncate(b):
    return b[:len(b) // 2]


def _flip(b):
    i = len(b) * 2 // 3          # inside the object code, past the header line
    return b[:i] + bytes([b[i] ^ 0x10]) + b[i + 1:]


def _garbage(b):
    return os.urandom(len(b))


def _raw_object(b):
    """The object code without its header: what an older graphc wrote, or a planted .o."""
    return b.partition(b"\n")[2]


@pytest.mark.slow
@pytest.mark.parametrize("damage", [lambda b: b"", _truncate, _garbage, _flip, _raw_object],
                         ids=["zero-byte", "truncated", "garbage", "one-flipped-byte", "headerless"])
def test_damaged_entry_is_rejected_recompiled_and_rewritten(tmp_path, damage):
    cache = tmp_path / "cache"
    cold, _ = _victim(cache)
    assert cold == {"ok": True, "hit": False}
    warm, err = _victim(cache)
    assert warm == {"ok": True, "hit": True} and "CacheWarning" not in err
    objs = _objects(cache)
    assert objs
    for p in objs:                       # every object: the graph's and the runtime modules'
        with open(p, "rb") as f:
            data = f.read()
        with open(p, "wb") as f:
            f.write(damage(data))
    got, err = _victim(cache)
    assert got == {"ok": True, "hit": False}, err
    assert "CacheWarning" in err and "rejected" in err and "recompiling" in err
    again, err = _victim(cache)            # rewritten: a clean hit
    assert again == {"ok": True, "hit": True} and "CacheWarning" not in err, err


def _compile(g):
    return get("llvm")(run_passes(parse_graph(g)).final, threads=1)


def _inputs():
    return [np.linspace(-1, 1, 64), np.cos(np.arange(64.0))]


def _check(exe):
    x, y = _inputs()
    a, s = exe(_inputs())
    np.testing.assert_allclose(a, np.exp(x) * y)
    np.testing.assert_allclose(s, (np.exp(x) * y).sum())


def test_entry_copied_under_another_key_is_rejected(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(cache))
    a = _compile(G)
    b = _compile(G.replace("exp(%x)", "sin(%x)"))
    src = os.path.join(cache, a.cache_key + ".o")
    dst = os.path.join(cache, b.cache_key + ".o")
    with open(src, "rb") as f, open(dst, "wb") as out:
        out.write(f.read())
    with pytest.warns(R.CacheWarning, match="sha256 mismatch"):
        c = _compile(G.replace("exp(%x)", "sin(%x)"))
    assert not c.cache_hit
    x, y = _inputs()
    np.testing.assert_allclose(c(_inputs())[0], np.sin(x) * y)
    assert _compile(G.replace("exp(%x)", "sin(%x)")).cache_hit     # rewritten


def test_entries_are_written_with_a_verified_header_and_private_modes(tmp_path, monkeypatch):
    cache = tmp_path / "sub" / "cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(cache))
    exe = _compile(G)
    assert os.stat(cache).st_mode & 0o777 == 0o700
    for ext in (".o", ".ll"):
        p = os.path.join(cache, exe.cache_key + ext)
        assert os.stat(p).st_mode & 0o077 == 0
        with open(p, "rb") as f:
            head = f.readline()
        assert head.startswith(b"graphc-cache 1 sha256=")
    again = _compile(G)
    assert again.cache_hit and "define" in again.llvm_ir
    _check(again)


def test_damaged_ir_text_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    key = _compile(G).cache_key
    with open(tmp_path / "cache" / (key + ".ll"), "wb") as f:
        f.write(b"garbage")
    exe = _compile(G)
    assert exe.cache_hit
    with pytest.warns(R.CacheWarning, match="rejected"):
        assert "define" in exe.llvm_ir


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722])
def test_group_or_world_writable_cache_dir_is_refused(tmp_path, monkeypatch, mode):
    cache = tmp_path / "shared"
    cache.mkdir()
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(cache))
    monkeypatch.setattr(R, "_WARNED", set())
    os.chmod(cache, mode)
    with pytest.warns(R.CacheWarning, match="writable by group or others") as w:
        a = _compile(G)
        b = _compile(G)
    assert len([x for x in w if issubclass(x.category, R.CacheWarning)]) == 1    # once per process
    assert not a.cache_hit and not b.cache_hit
    assert os.listdir(cache) == []                  # nothing written either
    _check(b)


def test_planted_object_in_a_writable_dir_is_not_loaded(tmp_path, monkeypatch):
    """Someone who can write the directory places a (here: valid, but not ours) entry: not run."""
    cache = tmp_path / "shared"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(cache))
    monkeypatch.setattr(R, "_WARNED", set())
    key = _compile(G.replace("exp(%x)", "sin(%x)")).cache_key     # the "hostile" object code
    os.rename(cache / (key + ".o"), tmp_path / "evil.o")
    target = _compile(G)
    os.replace(tmp_path / "evil.o", cache / (target.cache_key + ".o"))
    os.chmod(cache, 0o777)
    with pytest.warns(R.CacheWarning, match="not using the native-code cache"):
        exe = _compile(G)
    assert not exe.cache_hit
    _check(exe)


def test_cache_dir_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    cache = tmp_path / "theirs"
    cache.mkdir(mode=0o700)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(cache))
    monkeypatch.setattr(R, "_WARNED", set())
    if os.geteuid() == 0:
        os.chown(cache, 4242, 4242)                 # root may own it (as ssh allows); 4242 may not
    else:
        monkeypatch.setattr(os, "geteuid", lambda: 4242)
    with pytest.warns(R.CacheWarning, match="owned by uid"):
        exe = _compile(G)
    assert not exe.cache_hit and os.listdir(cache) == []
    _check(exe)


def test_cache_file_owned_by_another_user_or_writable_by_others_is_rejected(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(cache))
    key = _compile(G).cache_key
    p = cache / (key + ".o")
    os.chmod(p, 0o666)
    with pytest.warns(R.CacheWarning, match="writable by group or others"):
        exe = _compile(G)
    assert not exe.cache_hit and os.stat(p).st_mode & 0o077 == 0     # rewritten, private
    if os.geteuid() == 0:
        os.chown(p, 4242, 4242)
        with pytest.warns(R.CacheWarning, match="owned by uid 4242"):
            assert not _compile(G).cache_hit
    _check(_compile(G))


def test_symlinked_entry_is_not_followed(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(cache))
    key = _compile(G).cache_key
    p = cache / (key + ".o")
    os.rename(p, tmp_path / "elsewhere.o")
    os.symlink(tmp_path / "elsewhere.o", p)
    with pytest.warns(R.CacheWarning, match="rejected"):
        exe = _compile(G)
    assert not exe.cache_hit and not os.path.islink(p)
    _check(exe)


def test_clean_cache_gives_no_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", R.CacheWarning)
        assert not _compile(G).cache_hit
        assert _compile(G).cache_hit
