"""A backward stepper: the backward pass one op at a time.

The graph is laid out once; every frame is that same SVG with a small style sheet that
highlights the node whose backward just ran and the edges it sent gradients along, greys
out the edges not reached yet and hides every gradient number the pass has not reached.
So nodes never move between frames, and a frame costs a string join, not a layout. One
HTML page holds the picture and the per-step style sheets and steps through them with the
arrow keys or its two buttons.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import numpy as np

from tinygrad_attn.tensor import Tensor
from tinygrad_attn.viz import render, style
from tinygrad_attn.viz.graph import RESIDUAL, GradGraph, draw_graph

_PENDING = "#d9d9d9"
# Text that states a gradient, by the colours the graph gives it; hidden until reached.
_GRAD_TEXT = tuple(f'text[fill="{c}"]' for c in (style.GRAD_TEXT, style.NOISE_TEXT,
                                                  style.NONFINITE))


def _frame_css(graph: GradGraph, done: set[str], current: str | None, sent: set[str],
               unreached: set[str]) -> str:
    """The style sheet of one frame. Only strokes and arrowheads change colour: an edge's
    path is never filled (a filled curve paints a wedge over the picture)."""
    rules = []
    pending = sorted(e for e in set(graph.edge_ids.values()) if e not in done | sent)
    if pending:
        rules.append(", ".join(f"#{e} path" for e in pending)
                     + f" {{stroke: {_PENDING}; fill: none;}}")
        rules.append(", ".join(f"#{e} polygon" for e in pending)
                     + f" {{stroke: {_PENDING}; fill: {_PENDING};}}")
        rules.append(", ".join(f"#{e} text" for e in pending) + " {visibility: hidden;}")
    if sent:
        rules.append(", ".join(f"#{e} path" for e in sorted(sent))
                     + f" {{stroke: {style.HIGHLIGHT}; stroke-width: 3.5; fill: none;}}")
        rules.append(", ".join(f"#{e} polygon" for e in sorted(sent))
                     + f" {{stroke: {style.HIGHLIGHT}; fill: {style.HIGHLIGHT};}}")
        rules.append(", ".join(f"#{e} text" for e in sorted(sent))
                     + f" {{fill: {style.HIGHLIGHT}; font-weight: bold;}}")
    if unreached:
        rules.append(", ".join(f"#{n} {t}" for n in sorted(unreached) for t in _GRAD_TEXT)
                     + " {visibility: hidden;}")
    if current:
        rules.append(f"#{current} > path, #{current} > polygon, #{current} > polyline "
                     f"{{stroke: {style.HIGHLIGHT}; stroke-width: 4;}}")
    return "\n".join(rules)


def _with_style(svg: str, css: str) -> str:
    """The SVG with a style sheet inserted right after its opening tag."""
    match = re.search(r"<svg\b[^>]*>", svg)
    if match is None:
        raise ValueError("backward_stepper: the renderer did not return an SVG document")
    return f"{svg[:match.end()]}\n<style>\n{css}\n</style>{svg[match.end():]}"


def _reached_at(graph: GradGraph) -> dict[str, int]:
    """For each drawn node, the frame from which its gradient numbers are final: an op's
    when its backward runs, a leaf's when the last gradient reaches it, a collapsed
    module's when its last op has run, a residual add's when the skip's source is final,
    a cluster's header when all inside it is final;
    the output's from the start (the seed)."""
    rep = graph.replay
    frame: dict[str, int] = {}
    root_id = graph.node_ids.get(id(rep.root))
    for number, step in enumerate(rep.steps, 1):
        node_id = graph.node_ids.get(id(step.node))
        if node_id is not None:
            frame[node_id] = max(frame.get(node_id, 0), number)
        for position, norm in step.sent:
            inp = step.node._ctx.inputs[position]
            if norm is not None and inp._ctx is None and id(inp) in graph.node_ids:
                leaf_id = graph.node_ids[id(inp)]
                frame[leaf_id] = max(frame.get(leaf_id, 0), number)
    # A residual add's words say what reached the skip's source through the branch too:
    # final when that source's own backward runs (or, for a leaf, its last gradient came).
    ran_at = {id(step.node): number for number, step in enumerate(rep.steps, 1)}
    for step in rep.steps:
        node_id = graph.node_ids.get(id(step.node))
        if node_id is None or step.node._ctx.name != RESIDUAL:
            continue
        source = step.node._ctx.inputs[0]
        final = ran_at.get(id(source)) if source._ctx is not None else frame.get(
            graph.node_ids.get(id(source), ""))
        frame[node_id] = max(frame[node_id], final or 0)
    if root_id is not None and root_id.startswith("n"):
        frame[root_id] = 0
    # A module's header states its parameters' gradient: final once all inside is done.
    for header, members in graph.cluster_members.items():
        frame[header] = max((frame[n] for n in members if n in frame), default=0)
    return frame


def _frames(graph: GradGraph) -> list[tuple[str, str, str | None]]:
    """(caption, css, highlighted node id) before backward and after each op's backward."""
    rep = graph.replay
    steps = rep.steps
    reached_at = _reached_at(graph)
    unreached = {n for n, f in reached_at.items() if f > 0}
    frames = [(f"before backward: the seed gradient (norm "
               f"{style.fmt_norm(rep.tensor_norms.get(id(rep.root), 0.0))}) waits at the "
               f"output", _frame_css(graph, set(), None, set(), unreached),
               graph.node_ids.get(id(rep.root)))]
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
        unreached = {n for n, f in reached_at.items() if f > number}
        frames.append((caption, _frame_css(graph, done, node_id, sent, unreached), node_id))
        done |= sent
    return frames


def backward_stepper(root: Tensor, out_dir: str | os.PathLike[str], *,
                     collapse_depth: int | None = None, seed: np.ndarray | None = None,
                     graph: GradGraph | None = None, write_frames: bool = True) -> Path:
    """Write ``frame_000.svg``, ... (one per op's backward, reverse topological order)
    and ``stepper.html`` into ``out_dir``; returns the HTML page's path.

    The gradients are replayed from ``seed`` (default: ones for a one-element root), or
    taken from ``graph``, a :func:`draw_graph` of ``root`` to reuse. In the page, the
    arrow keys and the two buttons step backward and forward through the pass.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"backward_stepper: root must be a Tensor, got {type(root).__name__}")
    if graph is None:
        graph = draw_graph(root, collapse_depth=collapse_depth, seed=seed,
                           title="backward, one op at a time")
    if graph.replay.seed is None:
        raise ValueError(f"backward_stepper: a root of shape {root.shape} needs a seed "
                         f"(d something / d root) to have a backward pass to step through")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    svg = render.pipe(graph.source, "svg").decode("utf-8")
    svg = svg[svg.find("<svg"):]  # drop the XML prolog and doctype: it goes inline
    frames = _frames(graph)
    if write_frames:
        for index, (caption, css, _) in enumerate(frames):
            frame = _with_style(svg, css).replace(
                "</svg>", f"<!-- {html.escape(caption)} -->\n</svg>")
            (out / f"frame_{index:03d}.svg").write_text(frame, encoding="utf-8")
    page = out / "stepper.html"
    page.write_text(_page(svg, frames), encoding="utf-8")
    return page


def _page(svg: str, frames: list[tuple[str, str, str | None]]) -> str:
    captions = json.dumps([c for c, _, _ in frames])
    sheets = json.dumps([css for _, css, _ in frames])
    nodes = json.dumps([node for _, _, node in frames])
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Backward, step by step</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 1em; }}
#caption {{ font-size: 15px; margin: 0.5em 0; min-height: 2.6em; }}
#picture {{ overflow: auto; max-height: 85vh; border: 1px solid #ddd; }}
button {{ font-size: 14px; }}
</style>
<style id="step"></style></head>
<body>
<div><button id="prev">&larr; back</button> <button id="next">next &rarr;</button>
<span id="counter"></span> &middot; or the arrow keys. The node outlined in red just ran its
backward; red edges carry what it sent to its inputs; grey edges are not reached yet, and
gradient numbers appear once the pass reaches them.</div>
<div id="caption"></div>
<div id="picture">{svg}</div>
<script>
const captions = {captions};
const sheets = {sheets};
const nodes = {nodes};
let step = 0;
function show(i) {{
  step = Math.max(0, Math.min(sheets.length - 1, i));
  document.getElementById("step").textContent = sheets[step];
  document.getElementById("caption").textContent = captions[step];
  document.getElementById("counter").textContent = "frame " + step + " of " + (sheets.length - 1);
  const node = nodes[step] && document.getElementById(nodes[step]);
  if (node) node.scrollIntoView({{block: "center", inline: "center"}});
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
