"""Attention views: each head's weights as a heatmap with token labels, optionally beside
the gradient of the loss with respect to those weights.

The weights are read from the graph: every attention op (``scaled_dot_product_attention``
and the packed ``self_attention``) keeps its softmax weights (``op.weights``, shape
(batch, heads, L, S)), and ``op.weights_grad(dL/dout)`` gives the gradient with respect to
them, where ``dL/dout`` comes from replaying the backward pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_attn.ops.attention import ScaledDotProductAttention
from tinygrad_attn.tensor import Tensor
from tinygrad_attn.viz import style
from tinygrad_attn.viz.replay import Replay, replay, walk
from tinygrad_attn.viz.style import save_figure


@dataclass
class AttentionRecord:
    """The attention weights of one recorded attention op (one layer's heads).

    ``weights`` and ``grad`` have shape (batch, heads, L, S); ``grad`` is None before
    backward. ``scope`` is the module path of the call (e.g. ``"layers.0.self_attn"``).
    """

    scope: str
    weights: np.ndarray
    grad: np.ndarray | None


def attention_records(root: Tensor, seed: np.ndarray | None = None,
                      replay_: Replay | None = None) -> list[AttentionRecord]:
    """Every attention op in the graph of ``root``, first layer first, with d loss / d
    weights replayed from ``seed`` (default: ones for a one-element root; see
    :func:`~tinygrad_attn.viz.replay`, whose result ``replay_`` may be reused)."""
    if not isinstance(root, Tensor):
        raise TypeError(f"attention_records: root must be a Tensor, got "
                        f"{type(root).__name__}")
    nodes = [n for n in walk(root, "attention_records")
             if isinstance(n._ctx, ScaledDotProductAttention)]
    rep = replay_ if replay_ is not None and replay_.root is root else replay(
        root, seed=seed, who="attention_records")
    records = []
    for node in nodes:
        op = node._ctx
        grad = op.weights_grad(rep.grads[id(node)]) if id(node) in rep.grads else None
        weights = op.weights
        if weights.ndim == 3:  # unbatched (heads, L, S)
            weights, grad = weights[None], None if grad is None else grad[None]
        records.append(AttentionRecord(op.scope, weights, grad))
    return records


def _as_4d(array: Any, what: str) -> np.ndarray:
    data = array.data if isinstance(array, Tensor) else np.asarray(array)
    if data.ndim < 2 or data.ndim > 4:
        raise ValueError(f"draw_attention: {what} must have shape (L, S), (heads, L, S) or "
                         f"(batch, heads, L, S), got {data.shape}")
    return data.reshape((1,) * (4 - data.ndim) + data.shape)


def _labels(tokens: Sequence[str] | None, n: int, what: str) -> list[str]:
    if tokens is None:
        return [str(i) for i in range(n)]
    tokens = [str(t) for t in tokens]
    if len(tokens) != n:
        raise ValueError(f"draw_attention: {len(tokens)} {what} tokens for an attention "
                         f"map with {n} {what} positions")
    return tokens


def draw_attention(weights: AttentionRecord | np.ndarray | Tensor,
                   tokens: Sequence[str] | None = None, *,
                   key_tokens: Sequence[str] | None = None,
                   grad: np.ndarray | None = None, show_grad: bool = True, batch: int = 0,
                   title: str | None = None, path: str | os.PathLike[str] | None = None,
                   annotate: bool | None = None,
                   queries: Sequence[int] | None = None,
                   mark: int | Sequence[int] | None = None) -> Any:
    """Heatmaps of each head's attention weights for one batch item.

    Args:
        weights: an :class:`AttentionRecord` (from :func:`attention_records`), or weights
            of shape (L, S), (heads, L, S) or (batch, heads, L, S).
        tokens: labels of the query positions (and of the keys, unless ``key_tokens``).
        grad: d loss / d weights, the shape of ``weights`` (a record brings its own).
        show_grad: draw the gradient beside the weights when there is one.
        batch: which batch item to draw.
        path: if given, write ``path.svg`` and ``path.png``.
        annotate: write each weight in its cell (default: for maps up to 10 x 10).
        queries: draw only these query positions (rows), e.g. ``[-1]`` for where the
            last token looks: long sequences stay readable.
        mark: key position(s) to mark (e.g. the word that decides the answer): a bold
            label and a frame around its column.

    Weights use one sequential colormap (white to blue, 0 to 1); the gradient one
    diverging colormap centred on zero (blue negative, red positive), each with its
    colorbar.

    Returns the matplotlib Figure.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    title = title or (weights.scope if isinstance(weights, AttentionRecord) else None)
    if isinstance(weights, AttentionRecord):
        grad = weights.grad if grad is None else grad
        weights = weights.weights
    w = _as_4d(weights, "weights")
    g = None if grad is None or not show_grad else _as_4d(grad, "grad")
    if g is not None and g.shape != w.shape:
        raise ValueError(f"draw_attention: grad of shape {g.shape} does not match weights "
                         f"of shape {w.shape}")
    if not isinstance(batch, (int, np.integer)) or not -w.shape[0] <= batch < w.shape[0]:
        raise ValueError(f"draw_attention: batch index {batch!r} out of range for "
                         f"{w.shape[0]} batch item(s)")
    rows_labels = _labels(tokens, w.shape[2], "query")
    if queries is not None:
        rows = [int(q) for q in queries]
        if not rows or any(not -w.shape[2] <= q < w.shape[2] for q in rows):
            raise ValueError(f"draw_attention: queries {list(queries)} out of range for "
                             f"{w.shape[2]} query positions")
        w = w[:, :, rows]
        g = None if g is None else g[:, :, rows]
        rows_labels = [rows_labels[q] for q in rows]
    heads, length, source = w.shape[1:]
    cols_labels = _labels(key_tokens if key_tokens is not None else tokens, source, "key")
    annotate = length <= 10 and source <= 10 if annotate is None else annotate
    panels = 2 if g is not None else 1
    # A few query rows against many keys make wide strips: stack them in one column.
    strips = 4 * length <= source
    if strips:
        cols, rows = 1, heads * panels
    else:
        cols = panels if g is not None else min(heads, 4)
        rows = heads if g is not None else -(-heads // cols)
    marked = [] if mark is None else [int(m) % source for m in np.atleast_1d(mark)]
    cell = max(0.2 if strips else 0.35, min(0.6, 4.0 / max(length, source)))
    label_size = 9  # 9 pt is 13.75 px at the 110 dpi of the PNG: readable at 100%
    # A strip's cells are drawn taller than wide (0.45 in), so that its colorbar, as tall
    # as the strip, has room for its numbers.
    fig = Figure(figsize=(cols * (source * cell + 1.8),
                          rows * (length * (0.45 if strips else cell)
                                  + (1.5 if strips else 1.3)) + 0.9),
                 layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    limit = float(np.max(np.abs(g[batch]))) if g is not None else 0.0
    for h in range(heads):
        panel_sets = [(w[batch, h], "weights", "Blues", 0.0, 1.0)]
        if g is not None:
            panel_sets.append((g[batch, h], "dL/d weights", "RdBu_r", -(limit or 1),
                               limit or 1))
        for p, (data, label, cmap, vmin, vmax) in enumerate(panel_sets):
            if strips:
                ax = axes[h * panels + p, 0]
            else:
                ax = axes[h, p] if g is not None else axes[h // cols, h % cols]
            image = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax,
                              aspect="auto" if strips else "equal")
            ax.set_title(f"head {h} \u00b7 {label}", fontsize=10, loc="left")
            ax.set_xticks(range(source), cols_labels, rotation=90 if strips else 60,
                          ha="center" if strips else "right", fontsize=label_size)
            ax.set_yticks(range(length), rows_labels, fontsize=label_size)
            ax.set_xlabel("key (attended to)", fontsize=label_size)
            ax.set_ylabel("query", fontsize=label_size)
            bar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.01,
                               aspect=8 if strips else 20)
            bar.ax.tick_params(labelsize=label_size)
            for m in marked:
                ax.get_xticklabels()[m].set_fontweight("bold")
                ax.get_xticklabels()[m].set_color(style.MARK)
                ax.add_patch(_frame(m, length))
            if annotate:
                _annotate(ax, data, vmin, vmax, "{:.2f}" if label == "weights" else "{:.1e}")
    for extra in axes.ravel()[heads * panels:]:
        extra.set_visible(False)
    batch_note = f" (batch item {batch})" if w.shape[0] > 1 else ""
    reading = "each row: how much a query takes from each key (a row sums to 1)"
    if g is not None:
        reading += ("; dL/d weights: red, the loss rises with this weight, blue, it falls "
                    "(raising a blue weight helps)")
    if marked:
        reading += "; framed in purple: " + ", ".join(cols_labels[m] for m in marked)
    fig.suptitle(f"{title or 'attention'}{batch_note}\n{reading}", fontsize=10, x=0.01,
                 ha="left")
    if path is not None:
        save_figure(fig, path, dpi=110)
    return fig


def _frame(column: int, rows: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.5, -0.5), 1, rows, fill=False, edgecolor=style.MARK,
                     linewidth=2.5)


def _annotate(ax: Any, data: np.ndarray, vmin: float, vmax: float, fmt: str) -> None:
    middle = (vmin + vmax) / 2
    span = (vmax - vmin) or 1.0
    for (i, j), value in np.ndenumerate(data):
        # dark cells get white text: far from the middle of a diverging map, or high on
        # a sequential one
        dark = abs(value - middle) > 0.3 * span if vmin < 0 else value > vmin + 0.6 * span
        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=6,
                color="white" if dark else "black")
