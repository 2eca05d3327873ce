"""Shared test setup.

Every graph that goes through the pass pipeline during the test session (every traced graph,
every backward graph a compiled call builds, every stage the passes produce) is checked to be
well formed (graphc.ir.verify) and to survive its text form: parse_graph(print_graph(g)) == g,
with and without the `# loc` comments. So any test that compiles something also tests the IR.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Hypothesis writes nothing into the checkout: no example database (profile below), and its
# other files (the constants cache, patches) go to a temporary directory removed at exit. The
# environment variable reaches the subprocesses the tests start (tests/support/cuda_subprocess.py).
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    _hypothesis_dir = tempfile.mkdtemp(prefix="graphc-hypothesis-")
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _hypothesis_dir
    atexit.register(shutil.rmtree, _hypothesis_dir, ignore_errors=True)
try:
    import hypothesis
    from hypothesis.configuration import set_hypothesis_home_dir
except ImportError:         # hypothesis-based tests importorskip it themselves
    pass
else:
    set_hypothesis_home_dir(os.environ["HYPOTHESIS_STORAGE_DIRECTORY"])
    hypothesis.settings.register_profile("graphc-tests", database=None)
    hypothesis.settings.load_profile("graphc-tests")


@pytest.fixture(autouse=True)
def _every_graph_verifies_and_roundtrips(monkeypatch):
    try:
        from graphc.passes import manager
        from graphc.ir import parse_graph, print_graph, verify
    except Exception:       # graphc not importable: the tests themselves will say why
        yield
        return
    original = manager.run_passes
    checked = []

    def checking_run_passes(graph, *args, **kwargs):
        result = original(graph, *args, **kwargs)
        # the traced graph and the final (fused, planned) one cover both kinds of IR; every
        # pass in between is verified by the pass manager itself
        stages = [result.stages[0], result.stages[-1]] if len(result.stages) > 1 else result.stages
        for stage, g in stages:
            verify(g)
            for locs in ((False, True) if stage == "traced" else (False,)):
                text = print_graph(g, locs=locs)
                back = parse_graph(text)
                assert back == g, f"stage {stage!r} of {g.name!r} does not survive its text form:\n{text}"
                assert print_graph(back, locs=locs) == text
        checked.append(graph.name)
        return result

    monkeypatch.setattr(manager, "run_passes", checking_run_passes)
    yield checked


@pytest.fixture
def checked_graphs(_every_graph_verifies_and_roundtrips):
    """Names of the graphs the autouse check above has verified and round-tripped so far."""
    return _every_graph_verifies_and_roundtrips
