"""One self-contained HTML page about a compiled function, for one input signature:

  * what was traced and captured (arguments, state inputs with labels, write-backs) and the
    compiled function's trace log (why each trace happened)
  * for every pass, in order: its time and stats (primitive nodes, kernels, estimated bytes
    moved: graphc.passes.stats.graph_stats) with the change from the previous stage, and its IR
    text and graph picture (inline SVG) side by side with the previous stage's
  * the final kernels' code: each kernel body's IR, and the backend's LLVM IR when the
    executable has one (`.llvm_ir`)
  * the memory plan picture (graphc.memplot, inline SVG)

    from graphc.report import write_report
    write_report(compiled_fn, "report.html", *example_args)

Everything is inline (no external scripts, styles or images). Pictures need Graphviz's `dot`;
without it the page says so where the pictures would be, and still has everything else.
"""
from __future__ import annotations

import html
import os
import re

from .ir.text import print_graph

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:1.5em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
pre{background:#f7f7f9;border:1px solid #e1e1e8;padding:.6em;overflow:auto;max-height:32em;font-size:12px}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f0f0f0} td.l,th.l{text-align:left}
.side{display:flex;gap:1em;align-items:flex-start} .side>div{flex:1;min-width:0}
.pic{overflow:auto;max-height:48em;border:1px solid #eee;background:#fff} .pic svg{max-width:100%;height:auto}
.muted{color:#888} nav a{margin-right:.8em} .bad{color:#b00}
details summary{cursor:pointer;color:#036}
"""

_JS = """
window.__reportErrors = [];
window.addEventListener('error', function(e){ window.__reportErrors.push(String(e.message)); });
document.addEventListener('DOMContentLoaded', function(){
  var n = document.querySelectorAll('section.pass').length;
  var s = document.getElementById('report-status');
  var errs = window.__reportErrors;
  s.textContent = (errs.length ? 'errors: ' + errs.join('; ') : 'ok') + ' (' + n + ' pass sections)';
  s.setAttribute('data-status', errs.length ? 'error' : 'ok');
});
"""


def _e(s) -> str:
    return html.escape(str(s))


def _fmt_bytes(n):
    if n is None:
        return "-"
    return f"{n / 1e6:.3f} MB" if n >= 1e5 else f"{n:,} B"


def _strip_svg(svg: str) -> str:
    """SVG text fit for inlining in HTML: no XML prolog or DOCTYPE."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg, flags=re.S)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    return svg.strip()


def _picture(graph, collapse):
    from . import viz
    try:
        return f'<div class="pic">{_strip_svg(viz.to_svg(graph, collapse=collapse))}</div>'
    except viz.GraphvizNotFound as e:
        return f'<p class="bad">(no picture: {_e(e)})</p>'


def _delta(now, before):
    if before is None or now is None:
        return ""
    d = now - before
    return "" if d == 0 else f" ({'+' if d > 0 else ''}{d:,})"


def write_report(compiled_fn, path, *args, collapse=None, title=None, progress=True, **kwargs) -> str:
    """Write the HTML report of `compiled_fn` (gc.compile(...)) for these arguments to `path`.

    collapse: draw kernels as single boxes (see graphc.viz); None (default) collapses the
    pictures of graphs with more than 60 primitives. Keyword arguments other than these are
    passed to the compiled function. Returns the path."""
    from .passes.stats import graph_stats
    from .viz import compiled_of
    cf = compiled_of(compiled_fn)
    entry = cf.entry(*args, **kwargs)
    passes = entry.passes
    stages = passes.stages
    final = passes.final
    name = getattr(cf, "name", final.name)

    def coll(g):
        return collapse if collapse is not None else g.primitive_count() > 60

    it = range(len(stages))
    if progress:
        try:
            from tqdm import tqdm
            it = tqdm(it, desc="report: drawing passes", unit="pass", leave=False)
        except ImportError:
            pass
    pics, irs, stats = [], [], []
    for i in it:
        _, g = stages[i]
        pics.append(_picture(g, coll(g)))
        irs.append(print_graph(g, locs=True))
        stats.append(graph_stats(g))

    out = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>graphc report: {_e(name)}</title>",
           f"<style>{_CSS}</style><script>{_JS}</script></head><body>",
           f"<h1>{_e(title or 'graphc report: ' + name)}</h1>",
           f"<p>backend <b>{_e(getattr(cf, 'backend', '?'))}</b>; graph <code>{_e(final.name)}</code>; "
           f"status: <span id='report-status' data-status='pending'>pending</span></p>"]
    nav = ["<a href='#trace'>trace</a>"] + [f"<a href='#pass-{_e(n)}'>{_e(n)}</a>" for n, _ in stages] + [
        "<a href='#kernels'>final kernels</a>", "<a href='#memory'>memory plan</a>"]
    out.append("<nav>" + " ".join(nav) + "</nav>")

    # what was traced and captured
    traced = stages[0][1]
    out.append("<section id='trace'><h2>What was traced</h2>")
    out.append("<table><tr><th class='l'>input</th><th class='l'>kind</th><th class='l'>label</th>"
               "<th class='l'>type</th></tr>")
    for v in traced.inputs:
        out.append(f"<tr><td class='l'>%{_e(v.name)}</td><td class='l'>"
                   f"{'captured state' if v.kind == 'state' else 'argument'}</td>"
                   f"<td class='l'>{_e(v.label)}</td><td class='l'>{_e(v.type)}</td></tr>")
    out.append("</table>")
    out.append(f"<p>{len(traced.outputs)} output(s): " +
               ", ".join(f"<code>%{_e(v.name)}: {_e(v.type)}</code>" for v in traced.outputs) + "</p>")
    if traced.updates:
        out.append("<p>write-backs: " + ", ".join(
            f"<code>{_e(lbl)} &lt;- %{_e(v.name)}</code>" for lbl, v in traced.updates) + "</p>")
    if hasattr(cf, "explain"):
        out.append(f"<pre>{_e(cf.explain())}</pre>")
    out.append("</section>")

    # summary table
    out.append("<section id='summary'><h2>Passes at a glance</h2><table><tr><th class='l'>stage</th>"
               "<th>time (ms)</th><th>primitive nodes</th><th>top-level nodes</th><th>kernels</th>"
               "<th>bytes moved</th></tr>")
    for i, (n, g) in enumerate(stages):
        st = stats[i]
        t = passes.times_ms.get(n)
        out.append(f"<tr><td class='l'><a href='#pass-{_e(n)}'>{_e(n)}</a></td>"
                   f"<td>{'-' if t is None else f'{t:.2f}'}</td><td>{st['primitive_nodes']}</td>"
                   f"<td>{len(g.nodes)}</td><td>{len(g.kernels())}</td><td>{_fmt_bytes(st['bytes_moved'])}</td></tr>")
    out.append("</table></section>")

    # one section per pass
    for i, (n, g) in enumerate(stages):
        st = stats[i]
        prev = stats[i - 1] if i else None
        t = passes.times_ms.get(n)
        out.append(f"<section class='pass' id='pass-{_e(n)}' data-pass='{_e(n)}'>")
        out.append(f"<h2>{i}. {_e(n)}</h2>")
        out.append("<p>" + ("traced graph (no pass)" if t is None else f"pass time <b>{t:.3f} ms</b>") +
                   f"; primitive nodes <b>{st['primitive_nodes']}</b>{_delta(st['primitive_nodes'], prev and prev['primitive_nodes'])}"
                   f"; top-level nodes <b>{len(g.nodes)}</b>{_delta(len(g.nodes), i and len(stages[i - 1][1].nodes) or None)}"
                   f"; kernels <b>{len(g.kernels())}</b>"
                   f"; bytes moved <b>{_fmt_bytes(st['bytes_moved'])}</b></p>")
        same = i > 0 and irs[i] == irs[i - 1]
        if same:
            out.append("<p class='muted'>IR unchanged by this pass.</p>")
        out.append("<div class='side'>")
        if i > 0:
            pn = stages[i - 1][0]
            out.append(f"<div><h3>before: {_e(pn)}</h3><details><summary>IR text</summary>"
                       f"<pre>{_e(irs[i - 1])}</pre></details>{pics[i - 1]}</div>")
        out.append(f"<div><h3>after: {_e(n)}</h3><pre>{_e(irs[i])}</pre>{pics[i]}</div>")
        out.append("</div></section>")

    # final kernels' code
    out.append("<section id='kernels'><h2>Final kernels</h2>")
    ks = final.kernels()
    if not ks:
        out.append("<p class='muted'>no kernels in the final graph</p>")
    for j, k in enumerate(ks):
        outs = ", ".join(f"%{v.name}: {v.type}" for v in k.outs)
        bufs = [str(b) for b in k.attrs.get("buffers") or ()]
        out.append(f"<h3>kernel {j} [{_e(k.attrs.get('kind', '?'))}] -&gt; {_e(outs)}"
                   + (f" <span class='muted'>buffers {_e(bufs)}</span>" if bufs else "") + "</h3>")
        out.append(f"<pre>{_e(print_graph(k.body, locs=True)) if k.body is not None else ''}</pre>")
    try:
        exe = entry.exe
    except Exception as e:      # a backend that cannot compile this graph: say so, keep the page
        exe = None
        out.append(f"<p class='bad'>backend compile failed: {_e(type(e).__name__)}: {_e(e)}</p>")
    llvm = getattr(exe, "llvm_ir", None) if exe is not None else None
    if llvm:
        out.append(f"<h3 id='llvm-ir'>LLVM IR</h3><pre>{_e(llvm)}</pre>")
    out.append("</section>")

    # memory plan
    out.append("<section id='memory'><h2>Memory plan</h2>")
    from .memplot import is_planned, memory_svg
    if is_planned(final):
        from .passes.memory import memory_report
        rep = memory_report(final)
        out.append("<p>" + ", ".join(f"{k.replace('_bytes', '')} <b>{_fmt_bytes(v)}</b>" for k, v in rep.items())
                   + "</p>")
        out.append(f"<div class='pic'>{_strip_svg(memory_svg(final))}</div>")
    else:
        out.append("<p class='muted'>the final graph has no memory plan (the memory pass is off)</p>")
    out.append("</section></body></html>\n")

    path = os.fspath(path)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    return path
