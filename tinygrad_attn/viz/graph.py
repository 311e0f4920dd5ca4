"""``draw_graph``: the recorded computation graph as a Graphviz picture.

Op nodes show the op and its output's shape, leaves the parameter's module path and
shape. With gradients (a loss's, or any seed's) every edge carries the norm of the
gradient that its consumer sent back along it (found by replaying the backward pass, see
:mod:`.replay`), with pen width and colour scaled by its logarithm. Residual adds say in
words what reached the skip's source through the skip and through the branch, also when
the module holding them is collapsed into one node; there the skip path is drawn as a
dashed edge around the box. Gradients too small for the dtype to resolve get their own
colour. Module calls become clusters, and below ``collapse_depth`` each module becomes a
single node.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphviz
import numpy as np

from tinygrad_attn.engine import unbroadcast
from tinygrad_attn.tensor import Tensor
from tinygrad_attn.viz import render, style
from tinygrad_attn.viz.replay import EdgeKey, Replay, grad_norm, replay, walk

RESIDUAL = "residual_add"


class GradGraph(graphviz.Digraph):
    """A ``graphviz.Digraph`` that renders itself without a system Graphviz.

    ``write(stem)`` writes ``stem.dot``, ``stem.svg`` and ``stem.png``; ``pipe``,
    ``render``, ``view`` and Jupyter's inline display work as for any Digraph, through
    the same renderer (``graphviz-pure``, see :mod:`.render`). ``replay`` holds the
    gradients drawn; ``node_ids`` and ``edge_ids`` map tensors and edges of the recorded
    graph to the DOT ids drawn for them, and ``cluster_members`` each module cluster's
    header id to the ids of the nodes inside it (pictures built on top use them).
    """

    replay: Replay
    node_ids: dict[int, str]
    edge_ids: dict[EdgeKey, str]
    cluster_members: dict[str, list[str]]

    def write(self, stem: str | os.PathLike[str],
              formats: Iterable[str] = render.FORMATS) -> dict[str, Path]:
        """Write the graph as ``stem.dot`` plus the pictures in ``formats``."""
        return render.write(self.source, stem, formats)

    def to_svg(self) -> str:
        return render.pipe(self.source, "svg").decode("utf-8")

    def pipe(self, format: str | None = None, renderer: Any = None, formatter: Any = None,
             neato_no_op: Any = None, quiet: bool = False, *, engine: Any = None,
             encoding: str | None = None) -> bytes | str:
        """The picture as bytes (as ``str`` when ``encoding`` is given): "svg" or "png"."""
        data = render.pipe(self.source, format or self.format or "svg")
        return data.decode(encoding) if encoding else data

    def render(self, filename: str | os.PathLike[str] | None = None,
               directory: str | os.PathLike[str] | None = None, view: bool = False,
               cleanup: bool = False, format: str | None = None, renderer: Any = None,
               formatter: Any = None, neato_no_op: Any = None, quiet: bool = False,
               quiet_view: bool = False, *, outfile: str | os.PathLike[str] | None = None,
               engine: Any = None, raise_if_result_exists: bool = False,
               overwrite_source: bool = False) -> str:
        """Save the DOT source and render it beside it, as ``graphviz.Digraph.render``:
        ``render("g", format="png")`` writes ``g`` and ``g.png`` and returns the
        picture's path; ``view=True`` opens it."""
        if outfile is not None:
            out = Path(outfile)
            fmt = format or out.suffix.lstrip(".") or self.format or "svg"
            source = out.with_suffix(".gv") if filename is None else Path(filename)
        else:
            fmt = format or self.format or "svg"
            source = Path(filename if filename is not None else self.filepath)
            out = Path(f"{source}.{fmt}")
        if directory is not None:
            source, out = Path(directory) / source, Path(directory) / out
        if raise_if_result_exists and out.exists():
            raise FileExistsError(f"render: {out} exists already")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(self.source, encoding="utf-8")
        out.write_bytes(render.pipe(self.source, fmt))
        if cleanup:
            source.unlink()
        if view:
            self._view(out, quiet_view)
        return str(out)

    def view(self, filename: str | os.PathLike[str] | None = None,
             directory: str | os.PathLike[str] | None = None, cleanup: bool = False,
             quiet: bool = False, quiet_view: bool = False) -> str:
        """Render to SVG in a temporary folder (or ``filename``) and open the picture."""
        if filename is None and directory is None:
            directory = tempfile.mkdtemp(prefix="tinygrad_attn_")
        return self.render(filename if filename is not None else "graph", directory,
                           view=True, cleanup=cleanup, format="svg", quiet_view=quiet_view)

    @staticmethod
    def _view(path: Path, quiet: bool) -> None:
        try:
            graphviz.view(str(path), quiet=quiet)
        except (OSError, RuntimeError) as err:  # no desktop viewer: say where the picture is
            raise RuntimeError(f"view: could not open {path} ({err}); the picture is "
                               f"written there, open it yourself") from err

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **_: Any) -> dict[str, str]:
        return {"image/svg+xml": self.to_svg()}


def _is_parameter(t: Tensor) -> bool:
    return t._ctx is None and t.name is not None and t.requires_grad


def _parent(path: str) -> str:
    """The enclosing module of a dotted path: a parameter's module, a module's parent."""
    return path.rsplit(".", 1)[0] if "." in path else ""


def _child(path: str, under: str) -> str:
    """The first part of ``path`` below module ``under`` ("" if ``path`` is ``under``)."""
    if path == under:
        return ""
    rest = path[len(under) + 1:] if under else path
    return rest.split(".", 1)[0]


@dataclass
class Split:
    """What reached a residual add's skip source: through the skip edge and through the
    rest (the branch), in words."""

    source: str   # "input", or what made the skip's source, e.g. "norm1 output"
    branch: str   # the modules the branch runs through, e.g. "self_attn"
    skip: float
    rest: float
    skip_noise: bool = False
    rest_noise: bool = False

    def words(self) -> str:
        return (f"to {self.source}: via skip {style.fmt_norm(self.skip)} \u00b7 via "
                f"{self.branch} {style.fmt_norm(self.rest)}")


@dataclass
class _Module:
    """What a cluster or a collapsed node says about one module path."""

    path: str
    params: int = 0
    param_sq: float = 0.0  # sum of squared gradient norms of its parameters
    ops: int = 0


class _Builder:
    """Walks the recorded graph once and emits nodes, edges and clusters."""

    def __init__(self, root: Tensor, collapse_depth: int | None, show_constants: bool,
                 seed: np.ndarray | None, gradients: bool, rep: Replay | None) -> None:
        self.root = root
        self.depth = collapse_depth
        self.show_constants = show_constants
        self.order = walk(root, "draw_graph")
        self.leaves: dict[int, Tensor] = {}
        self.consumers: dict[int, list[Tensor]] = {}
        for node in self.order:
            for inp in node._ctx.inputs:
                self.consumers.setdefault(id(inp), []).append(node)
                if inp._ctx is None and id(inp) not in self.leaves:
                    self.leaves[id(inp)] = inp
        if root._ctx is None:
            self.leaves[id(root)] = root
        self.residual_ops = [n for n in self.order if n._ctx.name == RESIDUAL]
        if rep is not None and rep.root is root and (rep.merge_tag == collapse_depth
                                                     or collapse_depth is None):
            self.replay = rep
        elif not gradients:
            self.replay = Replay(root, self.order)
        else:
            self.replay = replay(root, seed=seed, merge_key=self._merge_key,
                                 merge_tag=collapse_depth, who="draw_graph")
        self.has_grads = self.replay.seed is not None
        self.noise_scale = self._noise_scale()
        self.position = {id(n): i for i, n in enumerate(self.order)}

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

    def is_skip(self, consumer: Tensor, position: int) -> bool:
        return position == 0 and consumer._ctx.name == RESIDUAL

    def _merge_key(self, inp: Tensor, consumer: Tensor, position: int) -> Hashable | None:
        target = self.group(consumer)
        if target is None or self.group(inp) == target:
            return None
        # The skip edges into a collapsed module are drawn apart from its other inputs.
        kind = "skip" if self.is_skip(consumer, position) else "into"
        return (kind, id(inp), target)

    # ---- the noise floor ----
    def _noise_scale(self) -> float:
        """|<seed, root>| bounded by ‖seed‖‖root‖: the size of the quantity whose
        gradients are drawn (the loss itself, for a loss)."""
        if not self.has_grads:
            return 0.0
        return grad_norm(self.replay.seed) * grad_norm(self.root.data)

    def is_noise(self, t: Tensor, norm: float | None) -> bool:
        """True when a gradient of norm ``norm`` at ``t`` is below the dtype's resolution.

        Scaling ``t`` by (1 + d) changes the loss by d <g, t>, at most d ‖g‖ ‖t‖. Rounding
        in the forward pass already moves the loss by about eps |loss| per rounding, and
        n elements give about sqrt(n) of them: when ‖g‖ ‖t‖ is below 4 eps sqrt(n) |loss|,
        the gradient is of the size of that rounding noise, and the loss hardly depends
        on ``t`` at all. (A tensor of zeros gives no scale to compare with: never noise.)
        """
        if norm is None or not self.has_grads or norm == 0 or not math.isfinite(norm):
            return False
        if t.data.dtype.kind != "f" or self.noise_scale == 0:
            return False
        eps = float(np.finfo(t.data.dtype).eps)
        size = grad_norm(t.data)
        floor = 4.0 * eps * math.sqrt(t.data.size) * self.noise_scale
        return size > 0 and norm * size < floor

    # ---- residual adds, in words ----
    def _ancestors(self, t: Tensor, inside: str | None) -> set[int]:
        """ids of the recorded tensors ``t`` was made from (``t`` included) that lie in
        module ``inside`` (every one, if None)."""
        found, stack = set(), [t]
        while stack:
            node = stack.pop()
            if id(node) in found or node._ctx is None:
                continue
            if inside is not None and not _within(node._ctx.scope, inside):
                continue
            found.add(id(node))
            stack.extend(node._ctx.inputs)
        return found

    def split(self, node: Tensor, module: str) -> Split | None:
        """The residual add ``node`` (inside ``module``) in words, or None without
        gradients. g_skip is what the add sends back along its skip edge; the rest is
        everything else that reaches the skip's source tensor (through the branch)."""
        skip_src, branch_out = node._ctx.inputs[0], node._ctx.inputs[1]
        grads = self.replay.grads
        if id(node) not in grads or id(skip_src) not in grads:
            return None
        g_skip = grads[id(node)]
        if g_skip.shape != skip_src.shape:
            g_skip = unbroadcast(g_skip, skip_src.shape)
        if skip_src._ctx is None or not _within(skip_src._ctx.scope, module):
            source = "input"
        else:
            part = _child(skip_src._ctx.scope, module)
            source = f"{part or skip_src._ctx.name.replace('_', ' ')} output"
        upstream = self._ancestors(skip_src, module) if source != "input" else set()
        branch_nodes = self._ancestors(branch_out, module) - upstream
        parts: list[str] = []
        for n in sorted((n for n in self.order if id(n) in branch_nodes),
                        key=lambda n: self.position[id(n)]):
            part = _child(n._ctx.scope, module)
            if part and part not in parts:
                parts.append(part)
        skip, rest = grad_norm(g_skip), grad_norm(grads[id(skip_src)] - g_skip)
        return Split(source, "\u2192".join(parts) or "branch", skip, rest,
                     self.is_noise(skip_src, skip), self.is_noise(skip_src, rest))

    def modules(self) -> dict[str, _Module]:
        """Per module path (and every ancestor): parameters and ops."""
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
        return found


def _within(scope: str, module: str) -> bool:
    return module == "" or scope == module or scope.startswith(module + ".")


def _html(*lines: str) -> str:
    return "<" + "<br/>".join(line for line in lines if line) + ">"


def _small(text: str, color: str = style.TEXT) -> str:
    return f'<font point-size="9" color="{color}">{text}</font>'


def _grad_text(text: str, noise: bool = False, nonfinite: bool = False) -> str:
    """A line that states a gradient (the stepper hides these until the pass gets there)."""
    color = style.NONFINITE if nonfinite else (style.NOISE_TEXT if noise else style.GRAD_TEXT)
    return _small(text, color)


def _grad_line(norm: float | None, noise: bool = False) -> str:
    if norm is None:
        return ""
    return _grad_text(f"\u2016g\u2016 {style.fmt_norm(norm)}", noise, not math.isfinite(norm))


def _legend(used: set[str], scale: style.LogScale, dtype_name: str) -> str:
    def swatch(kind: str, text: str) -> str:
        return (f'<tr><td bgcolor="{style.FILL[kind]}" border="1" width="18"></td>'
                f'<td align="left">{text}</td></tr>')

    def line(color: str, text: str, mark: str = "\u2014\u2014") -> str:
        return (f'<tr><td><font color="{color}"><b>{mark}</b></font></td>'
                f'<td align="left">{text}</td></tr>')

    def note(text: str) -> str:
        return f'<tr><td colspan="2" align="left">{text}</td></tr>'

    rows = ['<tr><td colspan="2"><b>Legend</b></td></tr>']
    kinds = [("op", "op: name, output shape"),
             ("parameter", "parameter: module path, shape"),
             ("input", "input (a leaf that is not a parameter)"),
             ("output", "output: the tensor whose gradients are drawn"),
             ("residual", "residual add: skip + branch"),
             ("module", "module collapsed into one node")]
    rows += [swatch(kind, text) for kind, text in kinds if kind in used]
    rows.append(note("arrows: forward data flow"))
    if "grads" in used:
        low, high = style.fmt_norm(10 ** scale.low), style.fmt_norm(10 ** scale.high)
        rows += [note("edge number: \u2016gradient\u2016 sent back along the edge"),
                 note("\u2016g\u2016 in a node: norm of the total gradient reaching it")]
        if "residual" in used or "module_residual" in used:
            rows.append(note("to input: via skip \u00b7 via branch: how much of the gradient "
                             "reaching<br align=\"left\"/>the residual's source came back "
                             "along the skip, how much through the branch"))
        rows += [line(style.ramp(1.0), f"large \u2016g\u2016 ({high}), thick and dark"),
                 line(style.ramp(0.0), f"small \u2016g\u2016 ({low}), thin and light "
                                       f"(log scale)")]
        if "noise" in used:
            rows.append(line(style.NOISE, f"below {dtype_name} resolution: the loss hardly "
                                          f"depends on this", "\u00b7\u00b7\u00b7\u00b7"))
        if "zero" in used:
            rows.append(line(style.ZERO, "zero gradient"))
        if "nonfinite" in used:
            rows.append(line(style.NONFINITE, "NaN or Inf"))
    else:
        rows.append(note("(no gradients drawn: pass seed=, or draw a one-element loss)"))
    if "skip" in used:
        rows.append(line("#333333", "residual skip path", "- - -"))
    if "no_grad" in used:
        rows.append(line(style.NO_GRAD, "input that needs no gradient", "- - -"))
    return ('<<table border="0" cellborder="0" cellspacing="2" cellpadding="2">'
            + "".join(rows) + "</table>>")


def draw_graph(root: Tensor, *, collapse_depth: int | None = None,
               show_constants: bool = False, title: str | None = None,
               seed: np.ndarray | Tensor | None = None, gradients: bool = True,
               legend: bool = True, replay: Replay | None = None) -> GradGraph:
    """The graph that produced ``root``, as a Graphviz digraph, with its gradients.

    The gradients are those ``root.backward(seed)`` computes, replayed from the graph
    (nothing is read from ``.grad``), so they can be drawn before or after backward; after
    backward the graph must have been kept with ``root.backward(retain_graph=True)``.

    Args:
        root: the output tensor (usually the loss).
        collapse_depth: draw each module whose path has this many parts (``"layers.0"``
            has 2) as a single node, with everything below it inside; None draws every op.
            Residual connections stay visible: a collapsed module says what reached its
            input through the skip and through each branch, and its skip is drawn as a
            dashed edge around it.
        show_constants: also draw one-element tensors that need no gradient.
        title: a caption (default: the root's op and shape); a newline breaks it.
        seed: d(something) / d root, the gradient the backward pass starts from, shape of
            ``root``; default ones for a one-element root (the loss's own gradients).
            A larger root without a seed is drawn without gradients.
        gradients: False draws the forward graph only.
        legend: draw the legend (it lists only what the picture shows).
        replay: a :func:`~tinygrad_attn.viz.replay` of ``root`` to reuse.

    Returns a :class:`GradGraph`; ``.write(stem)`` writes .dot, .svg and .png.
    Raises RuntimeError when ``backward()`` freed the graph (keep it with
    ``retain_graph=True``).
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"draw_graph: root must be a Tensor, got {type(root).__name__}")
    if collapse_depth is not None and (not isinstance(collapse_depth, int)
                                       or isinstance(collapse_depth, bool)
                                       or collapse_depth < 1):
        raise ValueError(f"draw_graph: collapse_depth must be a positive int or None, got "
                         f"{collapse_depth!r}")
    builder = _Builder(root, collapse_depth, show_constants, seed, gradients, replay)
    return _emit(builder, title, legend)


@dataclass
class _Edge:
    src: str
    dst: str
    edge_id: str
    inp: Tensor
    norm: float | None
    skip: bool = False
    around: bool = False  # a skip drawn around a collapsed module
    attrs: dict[str, str] = field(default_factory=dict)


def _emit(b: _Builder, title: str | None, legend: bool) -> GradGraph:
    rep = b.replay
    g = GradGraph(name="backprop")
    g.replay, g.node_ids, g.edge_ids, g.cluster_members = rep, {}, {}, {}
    used: set[str] = set()
    name = b.root._ctx.name if b.root._ctx else "leaf"
    if b.has_grads:
        used.add("grads")
        seed_text = ("" if b.root.numel() == 1 and np.all(rep.seed == 1) else
                     f", from a seed of norm {style.fmt_norm(grad_norm(rep.seed))}")
        caption = (f"How the gradient of {name} ({style.fmt_shape(b.root.shape)}) flows "
                   f"back: \u2016gradient\u2016 on every edge, as backward() computes "
                   f"it{seed_text}")
    else:
        caption = f"The graph that made {name} ({style.fmt_shape(b.root.shape)})"
    caption = title or caption
    g.attr("graph", rankdir="TB", fontname="Helvetica", fontsize="14", labelloc="t",
           label=caption.replace("\n", "\\n"), nodesep="0.35", ranksep="0.45",
           newrank="true")
    g.attr("node", fontname="Helvetica", fontsize="11", color=style.BORDER,
           style="filled", margin="0.12,0.05")
    g.attr("edge", fontname="Helvetica", fontsize="9", fontcolor=style.GRAD_TEXT,
           arrowsize="0.7")
    modules = b.modules()
    placed: dict[str, list[tuple[str, dict[str, str]]]] = {}  # cluster path -> nodes

    def place(cluster: str, node_id: str, attrs: dict[str, str]) -> None:
        attrs["id"] = node_id  # the SVG element keeps it: the stepper styles it by id
        placed.setdefault(cluster, []).append((node_id, attrs))

    # ---- nodes ----
    counter = iter(range(10**9))
    group_ids: dict[str, str] = {}
    residuals_in: dict[str, list[Tensor]] = {}
    for node in b.residual_ops:
        if b.group(node) is not None:
            residuals_in.setdefault(b.group(node), []).append(node)

    def draw_id(t: Tensor) -> str:
        group = b.group(t)
        if group is not None:
            if group not in group_ids:
                group_ids[group] = f"m{next(counter)}"
                splits = [b.split(r, group) for r in residuals_in.get(group, [])]
                place(_parent(group), group_ids[group],
                      _module_node(modules[group], b, splits, used, b.root in
                                   _members(b, group)))
            return group_ids[group]
        if id(t) not in g.node_ids:
            g.node_ids[id(t)] = f"n{next(counter)}"
            place(b.scope(t), g.node_ids[id(t)], _tensor_node(t, b, used))
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
    drawn: list[_Edge] = []
    merged_ids: dict[Hashable, str] = {}
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
                edge = _Edge(src, dst, edge_id, inp, norm, skip=key[0] == "skip")
                if edge.skip:  # around the module: to whatever reads its output
                    edge.around = True
                    edge.dst = _output_reader(b, key[2], draw_id) or dst
            else:
                edge_id = f"e{next(counter)}"
                norm = rep.edge_norms.get((id(node), position))
                edge = _Edge(src, dst, edge_id, inp, norm, skip=b.is_skip(node, position))
            g.edge_ids[(id(node), position)] = edge_id
            drawn.append(edge)
    # The colour scale spans the edges drawn (a collapsed module hides its inner edges).
    scale = style.LogScale([e.norm for e in drawn if e.norm is not None
                            and e.inp.requires_grad and not b.is_noise(e.inp, e.norm)])

    # ---- clusters, innermost first ----
    for edge in drawn:
        edge.attrs = _edge_attrs(edge, b, scale, used)
    first_op: dict[str, int] = {}  # drawn node -> where its first op comes in the pass
    for node in b.order:
        node_id = g.node_ids.get(id(node))
        if node_id is not None and node_id not in first_op:
            first_op[node_id] = b.position[id(node)]
    _emit_clusters(g, placed, modules, b, first_op, drawn)
    for edge in drawn:
        g.edge(edge.src, edge.dst, **edge.attrs)
    if legend:
        dtype = b.root.dtype if b.root.dtype.kind == "f" else np.dtype(np.float32)
        g.node("legend", label=_legend(used, scale, np.dtype(dtype).name),
               shape="plaintext", style="", fontsize="10")
        if b.root._ctx is not None:  # below the output, out of the graph's way
            g.edge(g.node_ids[id(b.root)] if id(b.root) in g.node_ids else
                   group_ids[b.group(b.root)], "legend", style="invis")
    return g


def _members(b: _Builder, group: str) -> set[Tensor]:
    return {n for n in b.order if b.group(n) == group}


def _output_reader(b: _Builder, group: str, draw_id: Any) -> str | None:
    """The drawn node that first reads what collapsed module ``group`` outputs."""
    for node in b.order:
        if b.group(node) == group:
            continue
        if any(b.group(inp) == group for inp in node._ctx.inputs):
            return draw_id(node)
    return None


def _tensor_node(t: Tensor, b: _Builder, used: set[str]) -> dict[str, str]:
    norm = b.replay.tensor_norms.get(id(t)) if b.has_grads else None
    shape = _small(style.fmt_shape(t.shape))
    attrs = {"shape": "box", "fillcolor": style.FILL["op"], "style": "rounded,filled"}
    kind = "op"
    if t._ctx is None:
        if _is_parameter(t):
            lines = [f"<b>{style.escape(t.name)}</b>", shape]
            kind = "parameter"
        else:
            what = "input" + (" (requires grad)" if t.requires_grad else "")
            name = f" {style.escape(t.name)}" if t.name else ""
            lines = [f"<b>{what}{name}</b>", shape]
            kind = "input"
            attrs["style"] = "filled"
    elif t._ctx.name == RESIDUAL:
        kind = "residual"
        lines = ["<b>residual add</b>", shape]
        split = b.split(t, t._ctx.scope)
        if split is not None:
            lines.append(_grad_text(style.escape(split.words()),
                                    split.skip_noise and split.rest_noise))
        norm = None  # the words say more than the total
    else:
        lines = [f"<b>{style.escape(t._ctx.name)}</b>", shape]
    if t is b.root:
        lines[0] = f"<b>output</b> \u00b7 {lines[0]}"
        if t.numel() == 1:
            lines.append(_small(f"value {style.fmt_value(float(t.data.reshape(-1)[0]))}"))
        kind = "output"
        attrs["peripheries"] = "2"
    attrs["fillcolor"] = style.FILL[kind]
    used.add(kind)
    noise = b.is_noise(t, norm)
    if noise:
        used.add("noise")
    lines.append(_grad_line(norm, noise))
    attrs["label"] = _html(*lines)
    return attrs


def _module_node(module: _Module, b: _Builder, splits: list[Split | None],
                 used: set[str], is_root: bool) -> dict[str, str]:
    lines = [f"<b>{style.escape(module.path)}</b>",
             _small(f"{module.ops} ops \u00b7 {style.fmt_count(module.params)} params")]
    if b.has_grads and module.params:
        lines.append(_grad_text(f"params \u2016g\u2016 "
                                f"{style.fmt_norm(math.sqrt(module.param_sq))}"))
    for split in [s for s in splits if s is not None][:4]:
        used.add("module_residual")
        lines.append(_grad_text(style.escape(split.words()),
                                split.skip_noise and split.rest_noise))
        if split.skip_noise and split.rest_noise:
            used.add("noise")
    used.add("module")
    attrs = {"shape": "box3d", "fillcolor": style.FILL["module"], "label": _html(*lines)}
    if is_root:
        attrs["peripheries"] = "2"
    return attrs


def _edge_attrs(edge: _Edge, b: _Builder, scale: style.LogScale,
                used: set[str]) -> dict[str, str]:
    attrs = {"id": edge.edge_id}
    if not edge.inp.requires_grad:
        used.add("no_grad")
        attrs.update(color=style.NO_GRAD, style="dashed", penwidth="0.8")
        return attrs
    prefix = "skip " if edge.skip else ""
    if b.has_grads and edge.norm is not None:
        noise = b.is_noise(edge.inp, edge.norm)
        if noise:
            used.add("noise")
            color, width = style.NOISE, 1.2
        else:
            color, width = scale.pen(edge.norm)
        if edge.norm == 0:
            used.add("zero")
        if not math.isfinite(edge.norm):
            used.add("nonfinite")
            attrs["fontcolor"] = style.NONFINITE
        elif noise:
            attrs["fontcolor"] = style.NOISE_TEXT
        attrs.update(color=color, penwidth=f"{width:.2f}",
                     label=f" {prefix}{style.fmt_norm(edge.norm)} ")
        if noise:
            attrs["style"] = "dotted"
    else:
        attrs.update(color="#555555", penwidth="1.0")
        if edge.skip:
            attrs["label"] = " skip "
    if edge.skip:
        used.add("skip")
        attrs["style"] = "dashed"
        attrs["penwidth"] = f"{max(float(attrs['penwidth']), 1.6):.2f}"
    return attrs


def _emit_clusters(g: GradGraph, placed: dict[str, list[tuple[str, dict[str, str]]]],
                   modules: dict[str, _Module], b: _Builder, first_op: dict[str, int],
                   drawn: list[_Edge]) -> None:
    """Nested clusters, one per module path. Each cluster's name and numbers sit in a
    header node (a node, so edges route around its text, as they would not around a
    cluster label). Invisible edges of weight 0 keep the header above everything in its
    cluster without pulling anything up; one of weight 1, to the cluster's first op, pulls
    the header down to it, so a cluster spans only the ranks its ops need; and what feeds
    a cluster from outside sits above its header, so the layers of an encoder stack one
    below the other instead of side by side."""
    paths = set(placed)
    for path in list(paths):
        while path:
            paths.add(path)
            path = _parent(path)
    children: dict[str, list[str]] = {}
    for path in sorted(paths):
        if path:
            children.setdefault(_parent(path), []).append(path)

    feeds: dict[str, set[str]] = {}  # drawn node -> the nodes that feed it
    for edge in drawn:
        feeds.setdefault(edge.dst, set()).add(edge.src)
    above: list[tuple[str, str]] = []  # (outside node, header) kept one above the other

    def fill(container: graphviz.Digraph, path: str, level: int) -> tuple[
            list[tuple[int, str]], set[str]]:
        """Draw what module ``path`` holds. Returns (position of its first op, node id) of
        the nodes and headers directly inside it (those without ops last), and every node
        inside it."""
        inside: list[tuple[int, str]] = []
        everything: set[str] = set()
        for node_id, attrs in placed.get(path, []):
            container.node(node_id, **attrs)
            inside.append((first_op.get(node_id, len(b.order)), node_id))
            everything.add(node_id)
        for child in children.get(path, []):
            with container.subgraph(name=f"cluster_{child}") as sub:
                module = modules.get(child, _Module(child))
                header = f"h_{child}"
                numbers = _small(f"{style.fmt_count(module.params)} params")
                if b.has_grads and module.params:
                    numbers += _grad_text(f" \u00b7 params \u2016g\u2016 "
                                          f"{style.fmt_norm(math.sqrt(module.param_sq))}")
                dom_id = f"c{len(g.cluster_members)}"  # the stepper styles it by id
                shade = ("#f6f8fb", "#eef2f7", "#e7ecf3")[level % 3]
                sub.attr(label="", style="rounded,filled", fillcolor=shade, color="#8a9bb0")
                sub.node(header, label=_html(f"<b>{style.escape(child)}</b>", numbers),
                         shape="plaintext", style="", fontsize="11", margin="0.02", id=dom_id)
                members, nodes = fill(sub, child, level + 1)
                members.sort()
                for position, node_id in members:
                    if position < len(b.order):  # a leaf may sit beside the header
                        sub.edge(header, node_id, style="invis", weight="0")
                first = members[0][0] if members else len(b.order)
                if members:
                    sub.edge(header, members[0][1], style="invis", weight="1")
                # Only what comes earlier in the pass can sit above (no cycle is made).
                sources = {src for dst in nodes for src in feeds.get(dst, ())} - nodes
                above.extend((src, header) for src in sorted(sources)
                             if first_op.get(src, -1) < first)
                inside.append((first, header))
                everything |= nodes | {header}
                g.cluster_members[dom_id] = sorted(nodes)
        return inside, everything

    fill(g, "", 0)
    for src, header in above:
        g.edge(src, header, style="invis", weight="0")
