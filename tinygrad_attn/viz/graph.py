"""``draw_graph``: the recorded computation graph as a Graphviz picture.

Op nodes show the op and its output's shape, leaves the parameter's module path and
shape. After ``backward()`` every edge carries the norm of the gradient that its consumer
sent back along it (found by replaying the backward pass, see :mod:`.replay`), with pen
width and colour scaled by its logarithm. Residual adds show how the gradient splits
between the skip path and the branch. Module calls become clusters, and below
``collapse_depth`` each module becomes a single node.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphviz
import numpy as np

from tinygrad_attn.engine import toposort, unbroadcast
from tinygrad_attn.tensor import Tensor
from tinygrad_attn.viz import render, style
from tinygrad_attn.viz.replay import EdgeKey, Replay, grad_norm, replay

RESIDUAL = "residual_add"


class GradGraph(graphviz.Digraph):
    """A ``graphviz.Digraph`` that renders itself without a system Graphviz.

    ``write(stem)`` writes ``stem.dot``, ``stem.svg`` and ``stem.png``; in Jupyter the
    graph shows inline as SVG. ``node_ids`` and ``edge_ids`` map tensors and edges of
    the recorded graph to the DOT ids drawn for them (pictures built on top use them).
    """

    replay: Replay
    node_ids: dict[int, str]
    edge_ids: dict[EdgeKey, str]

    def write(self, stem: str | os.PathLike[str],
              formats: Iterable[str] = render.FORMATS) -> dict[str, Path]:
        """Write the graph as ``stem.dot`` plus the pictures in ``formats``."""
        return render.write(self.source, stem, formats)

    def to_svg(self) -> str:
        return render.pipe(self.source, "svg").decode("utf-8")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **_: Any) -> dict[str, str]:
        return {"image/svg+xml": self.to_svg()}


def _is_parameter(t: Tensor) -> bool:
    return t._ctx is None and t.name is not None and t.requires_grad


def _parent(path: str) -> str:
    """The enclosing module of a dotted path: a parameter's module, a module's parent."""
    return path.rsplit(".", 1)[0] if "." in path else ""


@dataclass
class _Module:
    """What a cluster or a collapsed node says about one module path."""

    path: str
    params: int = 0
    param_sq: float = 0.0  # sum of squared gradient norms of its parameters
    ops: int = 0
    residuals: list[tuple[float, float]] = field(default_factory=list)

    def grad_text(self, has_grads: bool) -> str:
        if not has_grads or self.params == 0:
            return ""
        return f" \u00b7 params \u2016g\u2016 {style.fmt_norm(math.sqrt(self.param_sq))}"


class _Builder:
    """Walks the recorded graph once and emits nodes, edges and clusters."""

    def __init__(self, root: Tensor, collapse_depth: int | None, show_constants: bool,
                 seed: np.ndarray | None) -> None:
        self.root = root
        self.depth = collapse_depth
        self.show_constants = show_constants
        order = [] if root._ctx is None else toposort(root)
        self.order = order
        self.leaves: dict[int, Tensor] = {}
        for node in order:
            for inp in node._ctx.inputs:
                if inp._ctx is None and id(inp) not in self.leaves:
                    self.leaves[id(inp)] = inp
        if root._ctx is None:
            self.leaves[id(root)] = root
        self.residual_ops = [n for n in order if n._ctx.name == RESIDUAL]
        keep = {id(n) for n in self.residual_ops} | {id(n._ctx.inputs[0])
                                                      for n in self.residual_ops}
        self.replay = replay(root, seed=seed, keep=keep, merge_key=self._merge_key)
        self.has_grads = self.replay.has_gradients

    # ---- where things go ----
    def scope(self, t: Tensor) -> str:
        if t._ctx is not None:
            return t._ctx.scope
        return _parent(t.name) if _is_parameter(t) else ""

    def group(self, t: Tensor) -> str | None:
        """The collapsed module that swallows ``t``, or None if ``t`` is drawn itself."""
        if self.depth is None:
            return None
        scope = self.scope(t)
        parts = scope.split(".") if scope else []
        return ".".join(parts[:self.depth]) if len(parts) >= self.depth else None

    def hidden(self, t: Tensor) -> bool:
        """Constants (one-element tensors needing no gradient) are left out by default."""
        return (not self.show_constants and t._ctx is None and not t.requires_grad
                and t.numel() <= 1)

    def _merge_key(self, inp: Tensor, consumer: Tensor, position: int) -> Hashable | None:
        target = self.group(consumer)
        if target is None or self.group(inp) == target:
            return None
        return ("into", id(inp), target)

    # ---- the residual split ----
    def residual_split(self, node: Tensor) -> tuple[float, float] | None:
        """(‖g_skip‖, ‖g_branch‖) at one residual add, or None before backward.

        g_skip is what the add sends back along its skip edge; g_branch is everything
        else that reaches the skip's source tensor (the gradient back through the
        branch), i.e. that tensor's total gradient minus the skip edge's share.
        """
        skip = node._ctx.inputs[0]
        kept = self.replay.kept
        if id(node) not in kept or id(skip) not in kept:
            return None
        g_skip = kept[id(node)]
        if g_skip.shape != skip.shape:
            g_skip = unbroadcast(g_skip, skip.shape)
        return grad_norm(g_skip), grad_norm(kept[id(skip)] - g_skip)

    def modules(self) -> dict[str, _Module]:
        """Per module path (and every ancestor): parameters, ops, residual splits."""
        found: dict[str, _Module] = {}

        def visit(path: str) -> list[_Module]:
            chain = []
            while path:
                chain.append(found.setdefault(path, _Module(path)))
                path = _parent(path)
            return chain

        for leaf in self.leaves.values():
            if _is_parameter(leaf):
                norm = self.replay.tensor_norms.get(id(leaf), 0.0)
                for module in visit(_parent(leaf.name)):
                    module.params += leaf.numel()
                    module.param_sq += norm * norm
        for node in self.order:
            for module in visit(node._ctx.scope):
                module.ops += 1
            if node._ctx.name == RESIDUAL:
                split = self.residual_split(node)
                if split is not None:
                    for module in visit(node._ctx.scope):
                        module.residuals.append(split)
        return found


def _html(*lines: str) -> str:
    return "<" + "<br/>".join(lines) + ">"


def _small(text: str, color: str = "#4a4a4a") -> str:
    return f'<font point-size="9" color="{color}">{text}</font>'


def _grad_line(norm: float | None) -> str:
    if norm is None:
        return ""
    color = style.NONFINITE if not math.isfinite(norm) else "#4a4a4a"
    return _small(f"\u2016g\u2016 {style.fmt_norm(norm)}", color)


def _legend(has_grads: bool, scale: style.LogScale, collapsed: bool) -> str:
    def swatch(kind: str, text: str) -> str:
        return (f'<tr><td bgcolor="{style.FILL[kind]}" border="1" width="18"></td>'
                f'<td align="left">{text}</td></tr>')

    def line(color: str, text: str, dashed: bool = False) -> str:
        mark = "- - -" if dashed else "\u2014\u2014"
        return (f'<tr><td><font color="{color}"><b>{mark}</b></font></td>'
                f'<td align="left">{text}</td></tr>')

    rows = ['<tr><td colspan="2"><b>Legend</b></td></tr>',
            swatch("op", "op: name, output shape"),
            swatch("parameter", "parameter: module path, shape"),
            swatch("input", "input (a leaf that is not a parameter)"),
            swatch("output", "output (the tensor backward() started from)"),
            swatch("residual", "residual add: skip + branch")]
    if collapsed:
        rows.append(swatch("module", "module collapsed into one node"))
    rows.append('<tr><td colspan="2" align="left">arrows: forward data flow</td></tr>')
    if has_grads:
        low, high = style.fmt_norm(10 ** scale.low), style.fmt_norm(10 ** scale.high)
        rows += [
            '<tr><td colspan="2" align="left">edge label: \u2016gradient\u2016 sent back '
            'along the edge</td></tr>',
            '<tr><td colspan="2" align="left">\u2016g\u2016 in a node: norm of the total '
            'gradient reaching it</td></tr>',
            line(style.ramp(0.0), f"small \u2016g\u2016 ({low}), thin and light"),
            line(style.ramp(1.0), f"large \u2016g\u2016 ({high}), thick and dark (log scale)"),
            line(style.ZERO, "zero gradient"),
            line(style.NONFINITE, "NaN or Inf"),
        ]
    else:
        rows.append('<tr><td colspan="2" align="left">(call backward() to see '
                    'gradients)</td></tr>')
    rows += [line("#333333", "residual skip path", dashed=True),
             line(style.NO_GRAD, "input that needs no gradient", dashed=True)]
    return ('<<table border="0" cellborder="0" cellspacing="2" cellpadding="2">'
            + "".join(rows) + "</table>>")


def draw_graph(root: Tensor, *, collapse_depth: int | None = None,
               show_constants: bool = False, title: str | None = None,
               seed: np.ndarray | None = None, legend: bool = True) -> GradGraph:
    """The graph that produced ``root``, as a Graphviz digraph (before or after backward).

    Args:
        root: the output tensor (usually the loss).
        collapse_depth: draw each module whose path has this many parts (``"layers.0"``
            has 2) as a single node, with everything below it inside; None draws every op.
        show_constants: also draw one-element tensors that need no gradient.
        title: a caption (default: the root's op and shape).
        seed: the gradient to replay from (default: the one the last ``root.backward()``
            used; with neither, edges carry no gradients).
        legend: draw the legend.

    Returns a :class:`GradGraph`; ``.write(stem)`` writes .dot, .svg and .png.
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"draw_graph: root must be a Tensor, got {type(root).__name__}")
    if collapse_depth is not None and (not isinstance(collapse_depth, int)
                                       or isinstance(collapse_depth, bool)
                                       or collapse_depth < 1):
        raise ValueError(f"draw_graph: collapse_depth must be a positive int or None, got "
                         f"{collapse_depth!r}")
    builder = _Builder(root, collapse_depth, show_constants, seed)
    return _emit(builder, title, legend)


def _emit(b: _Builder, title: str | None, legend: bool) -> GradGraph:
    rep = b.replay
    g = GradGraph(name="backprop")
    g.replay, g.node_ids, g.edge_ids = rep, {}, {}
    when = "after backward" if b.has_grads else "before backward"
    caption = title or (f"{b.root._ctx.name if b.root._ctx else 'leaf'} "
                        f"{style.fmt_shape(b.root.shape)} \u2014 {when}")
    g.attr("graph", rankdir="TB", fontname="Helvetica", fontsize="14", labelloc="t",
           label=caption, nodesep="0.3", ranksep="0.4", newrank="true")
    g.attr("node", fontname="Helvetica", fontsize="11", color=style.BORDER,
           style="filled", margin="0.12,0.05")
    g.attr("edge", fontname="Helvetica", fontsize="9", fontcolor="#333333",
           arrowsize="0.7")
    modules = b.modules()
    placed: dict[str, list[tuple[str, dict[str, str]]]] = {}  # cluster path -> nodes

    def place(cluster: str, node_id: str, attrs: dict[str, str]) -> None:
        attrs["id"] = node_id  # the SVG element keeps it: the stepper styles it by id
        placed.setdefault(cluster, []).append((node_id, attrs))

    # ---- nodes ----
    counter = iter(range(10**9))
    group_ids: dict[str, str] = {}

    def draw_id(t: Tensor) -> str:
        group = b.group(t)
        if group is not None:
            if group not in group_ids:
                group_ids[group] = f"m{next(counter)}"
                place(_parent(group), group_ids[group], _module_node(modules[group],
                                                                      b.has_grads, t is b.root))
            return group_ids[group]
        if id(t) not in g.node_ids:
            g.node_ids[id(t)] = f"n{next(counter)}"
            place(b.scope(t), g.node_ids[id(t)], _tensor_node(t, b))
        return g.node_ids[id(t)]

    for node in b.order:
        for inp in node._ctx.inputs:
            if inp._ctx is None and not b.hidden(inp):
                draw_id(inp)
        draw_id(node)
    if b.root._ctx is None:
        draw_id(b.root)
    for node in b.order:  # tensors swallowed by a collapsed module map to its node
        if b.group(node) is not None:
            g.node_ids[id(node)] = group_ids[b.group(node)]

    # ---- edges ----
    drawn: list[tuple[str, str, str, Tensor, float | None, str]] = []
    merged_ids: dict[Hashable, str] = {}
    residuals = {id(n) for n in b.residual_ops}
    for node in b.order:
        for position, inp in enumerate(node._ctx.inputs):
            if b.hidden(inp):
                continue
            src, dst = draw_id(inp), draw_id(node)
            if src == dst:
                continue
            key = b._merge_key(inp, node, position)
            if key is not None:
                if key in merged_ids:
                    g.edge_ids[(id(node), position)] = merged_ids[key]
                    continue
                merged_ids[key] = f"e{next(counter)}"
                edge_id = merged_ids[key]
                norm = grad_norm(rep.merged[key]) if key in rep.merged else None
                role = ""
            else:
                edge_id = f"e{next(counter)}"
                norm = rep.edge_norms.get((id(node), position))
                role = ""
                if id(node) in residuals:
                    role = "skip" if position == 0 else "branch"
            g.edge_ids[(id(node), position)] = edge_id
            drawn.append((src, dst, edge_id, inp, norm, role))
    # The colour scale spans the edges drawn (a collapsed module hides its inner edges).
    scale = style.LogScale([d[4] for d in drawn if d[4] is not None and d[3].requires_grad])

    # ---- clusters, innermost first ----
    _emit_clusters(g, placed, modules, b.has_grads)
    for src, dst, edge_id, inp, norm, role in drawn:
        g.edge(src, dst, **_edge_attrs(edge_id, inp, norm, role, b.has_grads, scale))
    if legend:
        g.node("legend", label=_legend(b.has_grads, scale, b.depth is not None),
               shape="plaintext", style="", fontsize="10")
    return g


def _tensor_node(t: Tensor, b: _Builder) -> dict[str, str]:
    norm = b.replay.tensor_norms.get(id(t)) if b.has_grads else None
    shape = _small(style.fmt_shape(t.shape))
    attrs = {"shape": "box", "fillcolor": style.FILL["op"], "style": "rounded,filled"}
    if t._ctx is None:
        if _is_parameter(t):
            lines = [f"<b>{style.escape(t.name)}</b>", shape]
            attrs["fillcolor"] = style.FILL["parameter"]
        else:
            kind = "input" + (" (requires grad)" if t.requires_grad else "")
            name = f" {style.escape(t.name)}" if t.name else ""
            lines = [f"<b>{kind}{name}</b>", shape]
            attrs["fillcolor"] = style.FILL["input"]
            attrs["style"] = "filled"
        attrs["shape"] = "box"
    elif t._ctx.name == RESIDUAL:
        lines = ["<b>residual add</b>", shape]
        split = b.residual_split(t)
        if split is not None:
            lines.append(_small("\u2016g_skip\u2016 : \u2016g_branch\u2016"))
            lines.append(f"<b>{style.fmt_norm(split[0])} : {style.fmt_norm(split[1])}</b>")
        attrs["fillcolor"] = style.FILL["residual"]
    else:
        lines = [f"<b>{style.escape(t._ctx.name)}</b>", shape]
    if t is b.root:
        lines[0] = f"<b>output</b> \u00b7 {lines[0]}"
        if t.numel() == 1:
            lines.append(_small(f"value {float(t.data.reshape(-1)[0]):.4g}"))
        attrs["fillcolor"] = style.FILL["output"]
        attrs["peripheries"] = "2"
    if norm is not None and t._ctx is not None and t._ctx.name != RESIDUAL:
        lines.append(_grad_line(norm))
    elif norm is not None and t._ctx is None:
        lines.append(_grad_line(norm))
    attrs["label"] = _html(*lines)
    return attrs


def _module_node(module: _Module, has_grads: bool, is_root: bool) -> dict[str, str]:
    lines = [f"<b>{style.escape(module.path)}</b>",
             _small(f"{module.ops} ops \u00b7 {style.fmt_count(module.params)} params")]
    if has_grads and module.params:
        lines.append(_small(f"params \u2016g\u2016 {style.fmt_norm(math.sqrt(module.param_sq))}"))
    for skip, branch in module.residuals[:4]:
        lines.append(_small(f"residual \u2016g_skip\u2016 : \u2016g_branch\u2016 = "
                            f"{style.fmt_norm(skip)} : {style.fmt_norm(branch)}"))
    attrs = {"shape": "box3d", "fillcolor": style.FILL["module"], "label": _html(*lines)}
    if is_root:
        attrs["peripheries"] = "2"
    return attrs


def _edge_attrs(edge_id: str, inp: Tensor, norm: float | None, role: str,
                has_grads: bool, scale: style.LogScale) -> dict[str, str]:
    attrs = {"id": edge_id}
    if not inp.requires_grad:
        attrs.update(color=style.NO_GRAD, style="dashed", penwidth="0.8")
        return attrs
    prefix = f"{role} " if role else ""
    if has_grads and norm is not None:
        color, width = scale.pen(norm)
        attrs.update(color=color, penwidth=f"{width:.2f}",
                     label=f" {prefix}{style.fmt_norm(norm)} ")
        if not math.isfinite(norm):
            attrs["fontcolor"] = style.NONFINITE
    else:
        attrs.update(color="#555555", penwidth="1.0")
        if role:
            attrs["label"] = f" {role} "
    if role == "skip":
        attrs["style"] = "dashed"
        attrs["penwidth"] = f"{max(float(attrs['penwidth']), 1.6):.2f}"
    return attrs


def _emit_clusters(g: graphviz.Digraph, placed: dict[str, list[tuple[str, dict[str, str]]]],
                   modules: dict[str, _Module], has_grads: bool) -> None:
    paths = set(placed)
    for path in list(paths):
        while path:
            paths.add(path)
            path = _parent(path)
    children: dict[str, list[str]] = {}
    for path in sorted(paths):
        if path:
            children.setdefault(_parent(path), []).append(path)

    def fill(container: graphviz.Digraph, path: str, level: int) -> None:
        for node_id, attrs in placed.get(path, []):
            container.node(node_id, **attrs)
        for child in children.get(path, []):
            with container.subgraph(name=f"cluster_{child}") as sub:
                module = modules.get(child, _Module(child))
                label = _html(f"<b>{style.escape(child)}</b>",
                              _small(f"{style.fmt_count(module.params)} params"
                                     f"{module.grad_text(has_grads)}"))
                shade = ("#f6f8fb", "#eef2f7", "#e7ecf3")[level % 3]
                sub.attr(label=label, style="rounded,filled", fillcolor=shade,
                         color="#8a9bb0", fontsize="11", labeljust="l")
                fill(sub, child, level + 1)

    fill(g, "", 0)
