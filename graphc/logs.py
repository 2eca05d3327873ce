"""Logging channels, like TORCH_LOGS: say what the compiler does as it does it.

    GRAPHC_LOG=recompiles,passes python train.py       # or GRAPHC_LOG=all
    graphc.logs.set_logs("recompiles,kernels")          # the same from Python; set_logs(None):
                                                       # back to the environment variable

| channel      | one line per                                                                 |
|--------------|------------------------------------------------------------------------------|
| `recompiles` | trace of a compiled function, with its reason (what `.explain()` says)       |
| `passes`     | pass run on a graph: its name, milliseconds, nodes and kernels after it      |
| `kernels`    | kernel of a compiled graph: name, kind, output types, the primitives inside  |
| `memory`     | compiled graph: the memory plan's naive / arena / lower-bound / fresh bytes  |

Each channel is the Python logger "graphc.<channel>" (messages at INFO). The setting is read
at every use, so changing the environment variable mid-run takes effect. While any channel is
on, a handler writing to (the current) sys.stderr sits on the "graphc" logger; records also
propagate to the root logger as usual (pytest's caplog sees them). A channel whose logger has
its own level set to INFO or lower (`logging.getLogger("graphc.kernels").setLevel("INFO")`) is
on too, with the handlers the application configured.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

CHANNELS = ("recompiles", "passes", "kernels", "memory")
ENV = "GRAPHC_LOG"

_programmatic = [None]      # set_logs(...): a frozenset of channels, or None (use the env var)
_parsed = {}                # spec string -> frozenset (warned about unknown names once)
_handler = [None]


def _parse(spec: str) -> frozenset:
    got = _parsed.get(spec)
    if got is None:
        names = {s.strip().lower() for s in spec.replace(";", ",").split(",") if s.strip()}
        if "all" in names:
            names = (names - {"all"}) | set(CHANNELS)
        unknown = sorted(names - set(CHANNELS))
        if unknown:
            warnings.warn(f"{ENV}: unknown channel(s) {unknown}; channels are "
                          f"{', '.join(CHANNELS)}, all", stacklevel=3)
        got = _parsed[spec] = frozenset(names & set(CHANNELS))
    return got


def active_channels() -> frozenset:
    """The channels switched on now (by set_logs, else by $GRAPHC_LOG)."""
    if _programmatic[0] is not None:
        return _programmatic[0]
    return _parse(os.environ.get(ENV, ""))


def set_logs(channels=None) -> None:
    """Switch channels on from Python: "recompiles,kernels", ["passes"], "all", "" (none), or
    None to follow $GRAPHC_LOG again."""
    if channels is None:
        _programmatic[0] = None
        return
    if not isinstance(channels, str):
        channels = ",".join(channels)
    names = {s.strip().lower() for s in channels.split(",") if s.strip()}
    unknown = sorted(names - set(CHANNELS) - {"all"})
    if unknown:
        raise ValueError(f"unknown log channel(s) {unknown}; channels are {', '.join(CHANNELS)}, all")
    _programmatic[0] = _parse(channels)


def logger(channel: str) -> logging.Logger:
    return logging.getLogger(f"graphc.{channel}")


def enabled(channel: str) -> bool:
    if channel in active_channels():
        return True
    lvl = logger(channel).level
    return logging.NOTSET < lvl <= logging.INFO


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when the record is emitted (redirections, capsys)."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


def _ensure_handler():
    if _handler[0] is None:
        h = _StderrHandler(sys.stderr)
        h.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        h.addFilter(_OnlyActive())   # it prints only the channels GRAPHC_LOG / set_logs switched on
        _handler[0] = h
        logging.getLogger("graphc").addHandler(h)


def log(channel: str, msg, *args) -> None:
    """Log msg % args on a channel if it is on (build costly messages only after enabled())."""
    lg = logger(channel)
    if channel in active_channels():
        # switched on by GRAPHC_LOG / set_logs: emitted whatever the loggers' levels say
        _ensure_handler()
        lg.handle(lg.makeRecord(lg.name, logging.INFO, "(graphc)", 0, msg, args, None))
    elif logging.NOTSET < lg.level <= logging.INFO:
        lg.info(msg, *args)


class _OnlyActive(logging.Filter):
    def filter(self, record):
        return record.name.split(".", 1)[-1] in active_channels()


# ---- what the compiler logs ------------------------------------------------------------------------
def _fmt_bytes(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def recompile(fn_name: str, graph_name: str, reason: str) -> None:
    if enabled("recompiles"):
        log("recompiles", "tracing %s (graph %s): %s", fn_name, graph_name, reason)


def pass_done(graph_name: str, pass_name: str, ms: float, graph) -> None:
    if enabled("passes"):
        kernels = len(graph.kernels())
        log("passes", "%s: %-15s %8.3f ms  nodes=%d kernels=%d primitives=%d", graph_name, pass_name,
            ms, len(graph.nodes), kernels, graph.primitive_count())


def one_shot(graph) -> None:
    """A graph that serves one call runs on the interpreter, unoptimised (GraphFunction.exe)."""
    if enabled("kernels"):
        log("kernels", "%s: one-shot graph (%d primitives; it serves one call): runs on the "
            "interpreter, no passes, no native code", graph.name, graph.primitive_count())


def compiled(graph) -> None:
    """The final graph of a compile: its kernels and its memory plan."""
    if enabled("kernels"):
        ks = graph.kernels()
        log("kernels", "%s: %d kernel(s)", graph.name, len(ks))
        for n in ks:
            body = n.body
            ops = [m.op for m in body.nodes] if body is not None else []
            outs = ", ".join(f"%{v.name}: {v.type}" for v in n.outs)
            log("kernels", "%s: %s %s -> %s  ops=[%s]", graph.name,
                body.name if body is not None else n.out.name, n.attrs.get("kind", "?"), outs,
                ", ".join(ops))
    if enabled("memory"):
        if graph.is_planned:
            from .passes.memory import memory_report
            r = memory_report(graph)
            log("memory", "%s: naive=%s arena=%s lower_bound=%s fresh=%s  (%d, %d, %d, %d bytes)",
                graph.name, _fmt_bytes(r["naive_bytes"]), _fmt_bytes(r["arena_bytes"]),
                _fmt_bytes(r["lower_bound_bytes"]), _fmt_bytes(r["fresh_bytes"]),
                r["naive_bytes"], r["arena_bytes"], r["lower_bound_bytes"], r["fresh_bytes"])
        else:
            log("memory", "%s: no memory plan (the memory pass is off)", graph.name)
