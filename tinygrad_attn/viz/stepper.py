"""A backward stepper: the backward pass one op at a time.

The graph is laid out once; every frame is that same SVG with a small style sheet that
highlights the node whose backward just ran and the edges it sent gradients along, greys
out the edges not reached yet and hides their labels. So nodes never move between frames,
and a frame costs a string join, not a layout. One HTML page holds the picture and the
per-step style sheets and steps through them with the arrow keys.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

from tinygrad_attn.tensor import Tensor
from tinygrad_attn.viz import render, style
from tinygrad_attn.viz.graph import GradGraph, draw_graph

_PENDING = "#d9d9d9"


def _frame_css(graph: GradGraph, done: set[str], current: str | None,
               sent: set[str]) -> str:
    rules = []
    pending = [e for e in set(graph.edge_ids.values()) if e not in done and e not in sent]
    if pending:
        rules.append(", ".join(f"#{e} path, #{e} polygon" for e in sorted(pending))
                     + f" {{stroke: {_PENDING}; fill: {_PENDING};}}")
        rules.append(", ".join(f"#{e} text" for e in sorted(pending))
                     + " {visibility: hidden;}")
    if sent:
        rules.append(", ".join(f"#{e} path, #{e} polygon" for e in sorted(sent))
                     + f" {{stroke: {style.HIGHLIGHT}; stroke-width: 3.5;}}")
        rules.append(", ".join(f"#{e} polygon" for e in sorted(sent))
                     + f" {{fill: {style.HIGHLIGHT};}}")
        rules.append(", ".join(f"#{e} text" for e in sorted(sent))
                     + f" {{fill: {style.HIGHLIGHT}; font-weight: bold;}}")
    if current:
        rules.append(f"#{current} > path, #{current} > polygon "
                     f"{{stroke: {style.HIGHLIGHT}; stroke-width: 4;}}")
    return "\n".join(rules)


def _with_style(svg: str, css: str) -> str:
    """The SVG with a style sheet inserted right after its opening tag."""
    match = re.search(r"<svg\b[^>]*>", svg)
    if match is None:
        raise ValueError("backward_stepper: the renderer did not return an SVG document")
    return f"{svg[:match.end()]}\n<style>\n{css}\n</style>{svg[match.end():]}"


def _frames(graph: GradGraph) -> list[tuple[str, str]]:
    """(caption, css) for the picture before backward and after each op's backward."""
    rep = graph.replay
    steps = rep.steps
    frames = [(f"before backward: the seed gradient (norm "
               f"{style.fmt_norm(rep.tensor_norms.get(id(rep.root), 0.0))}) waits at the "
               f"output", _frame_css(graph, set(), None, set()))]
    done: set[str] = set()
    for number, step in enumerate(steps, 1):
        op = step.node._ctx
        node_id = graph.node_ids.get(id(step.node))
        sent = {graph.edge_ids[(id(step.node), p)] for p, n in step.sent
                if n is not None and (id(step.node), p) in graph.edge_ids}
        parts = [f"input {p} \u2190 {style.fmt_norm(n)}" for p, n in step.sent if n is not None]
        scope = f" in {op.scope}" if op.scope else ""
        caption = (f"step {number}/{len(steps)}: backward of {op.name}{scope} received "
                   f"\u2016g\u2016 {style.fmt_norm(step.received)} and sent "
                   f"{', '.join(parts) or 'nothing'}")
        frames.append((caption, _frame_css(graph, done, node_id, sent)))
        done |= sent
    return frames


def backward_stepper(root: Tensor, out_dir: str | os.PathLike[str], *,
                     collapse_depth: int | None = None,
                     write_frames: bool = True) -> Path:
    """Write ``frame_000.svg``, ... (one per op's backward, reverse topological order)
    and ``stepper.html`` into ``out_dir``; returns the HTML page's path.

    Needs ``root.backward()`` to have run. In the page, the left and right arrow keys step
    backward and forward through the pass.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"backward_stepper: root must be a Tensor, got {type(root).__name__}")
    if root._backward_seed is None:
        raise ValueError("backward_stepper: call backward() on the root first; there is no "
                         "backward pass to step through")
    graph = draw_graph(root, collapse_depth=collapse_depth, legend=False,
                       title="backward, one op at a time")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    svg = render.pipe(graph.source, "svg").decode("utf-8")
    svg = svg[svg.find("<svg"):]  # drop the XML prolog and doctype: it goes inline
    frames = _frames(graph)
    if write_frames:
        for index, (caption, css) in enumerate(frames):
            frame = _with_style(svg, css).replace(
                "</svg>", f"<!-- {html.escape(caption)} -->\n</svg>")
            (out / f"frame_{index:03d}.svg").write_text(frame, encoding="utf-8")
    page = out / "stepper.html"
    page.write_text(_page(svg, frames), encoding="utf-8")
    return page


def _page(svg: str, frames: list[tuple[str, str]]) -> str:
    captions = json.dumps([c for c, _ in frames])
    sheets = json.dumps([css for _, css in frames])
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Backward, step by step</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 1em; }}
#caption {{ font-size: 15px; margin: 0.5em 0; min-height: 2.6em; }}
#picture svg {{ max-width: 100%; height: auto; }}
button {{ font-size: 14px; }}
</style>
<style id="step"></style></head>
<body>
<div><button id="prev">&larr; back</button> <button id="next">next &rarr;</button>
<span id="counter"></span> &middot; use the arrow keys. The highlighted node just ran its
backward; red edges carry what it sent to its inputs; grey edges are not reached yet.</div>
<div id="caption"></div>
<div id="picture">{svg}</div>
<script>
const captions = {captions};
const sheets = {sheets};
let step = 0;
function show(i) {{
  step = Math.max(0, Math.min(sheets.length - 1, i));
  document.getElementById("step").textContent = sheets[step];
  document.getElementById("caption").textContent = captions[step];
  document.getElementById("counter").textContent = "frame " + step + " of " + (sheets.length - 1);
}}
document.addEventListener("keydown", e => {{
  if (e.key === "ArrowRight") show(step + 1);
  if (e.key === "ArrowLeft") show(step - 1);
}});
document.getElementById("next").onclick = () => show(step + 1);
document.getElementById("prev").onclick = () => show(step - 1);
show(0);
</script>
</body></html>
"""
