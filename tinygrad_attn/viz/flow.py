"""Layer by layer: how much gradient reaches each layer's input, and how alike the
positions' vectors become.

``layer_input_grad_norms`` reads the first off the graph (the tensors a layer consumes
that were made outside it); ``token_similarity`` measures the second;
``draw_gradient_flow`` and ``draw_token_similarity`` chart them for several models side
by side, each with a title and a one-line caption that states the reading.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Mapping
from typing import Any

import numpy as np

from tinygrad_attn.tensor import Tensor
from tinygrad_attn.viz.replay import Replay, replay, walk
from tinygrad_attn.viz.style import plain_log_ticks, save_figure


def layer_input_grad_norms(root: Tensor, prefix: str = "layers",
                           seed: np.ndarray | None = None,
                           replay_: Replay | None = None) -> list[float]:
    """Norm of the total gradient reaching the input of each module ``prefix.0``,
    ``prefix.1``, ... (first layer first), replayed from ``seed`` (default: ones for a
    one-element root, the loss; ``replay_`` may be a replay of ``root`` to reuse).

    A layer's input is the tensor it reads that was made outside it (parameters and
    tensors needing no gradient aside); layer 0's input needs ``requires_grad=True`` to
    be measured (NaN otherwise).
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"layer_input_grad_norms: root must be a Tensor, got "
                        f"{type(root).__name__}")
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)(\.|$)")

    def layer_of(t: Tensor) -> int | None:
        match = pattern.match(t._ctx.scope) if t._ctx is not None else None
        return int(match.group(1)) if match else None

    order = walk(root, "layer_input_grad_norms")
    rep = replay_ if replay_ is not None and replay_.root is root else replay(
        root, seed=seed, who="layer_input_grad_norms")
    if rep.seed is None:
        raise ValueError(f"layer_input_grad_norms: a root of shape {root.shape} needs a "
                         f"seed (d something / d root) to have gradients")
    inputs: dict[int, Tensor] = {}
    for node in order:
        layer = layer_of(node)
        if layer is None:
            continue
        for inp in node._ctx.inputs:
            outside = inp._ctx is None and inp.name is None or (
                inp._ctx is not None and layer_of(inp) != layer)
            if outside and inp.requires_grad and (
                    layer not in inputs or inp.numel() > inputs[layer].numel()):
                inputs[layer] = inp
    count = max(inputs, default=-1) + 1
    return [rep.tensor_norms.get(id(inputs[i]), float("nan")) if i in inputs
            else float("nan") for i in range(count)]


def draw_gradient_flow(series: Mapping[str, list[float]],
                       path: str | os.PathLike[str] | None = None,
                       title: str = "Gradient norm reaching each layer's input",
                       caption: str | None = None) -> Any:
    """A log-scale line chart, last layer (nearest the loss) on the left, first on the
    right, one line per model, with ``caption`` (one line: what to read) below the title.
    Writes ``path.svg`` and ``path.png`` when given."""
    return _layer_chart(series, path, title, "\u2016dL / d(layer input)\u2016",
                        "\u2190 nearer the loss          layer whose input is measured"
                        "          nearer the data \u2192", from_loss=True, caption=caption)


def token_similarity(encoder: Any, x: Tensor) -> list[float]:
    """How alike the positions' vectors are after each layer of ``encoder.layers``: the
    mean cosine similarity over all pairs of positions, averaged over the batch.

    Near 0 the tokens still carry their own information; at 1 every position holds the
    same vector, and the sequence's information is gone.
    """
    from tinygrad_attn.engine import no_grad

    similarities = []
    with no_grad():
        for layer in encoder.layers:
            x = layer(x)
            unit = x.data / np.linalg.norm(x.data, axis=-1, keepdims=True)
            cosines = unit @ np.swapaxes(unit, -1, -2)  # (batch, T, T)
            length = cosines.shape[-1]
            off_diagonal = cosines.sum(axis=(-2, -1)) - np.trace(cosines, axis1=-2, axis2=-1)
            similarities.append(float(np.mean(off_diagonal) / (length * (length - 1))))
    return similarities


def draw_token_similarity(series: Mapping[str, list[float]],
                          path: str | os.PathLike[str] | None = None,
                          title: str = "How alike the tokens become, layer by layer",
                          caption: str | None = None) -> Any:
    """A line chart of :func:`token_similarity` per model, first layer on the left, with
    ``caption`` below the title. Writes ``path.svg`` and ``path.png`` when given."""
    return _layer_chart(series, path, title, "mean cosine between positions\n"
                        "(1 = every position holds the same vector)",
                        "layer whose output is measured          nearer the output \u2192",
                        from_loss=False, caption=caption)


def _layer_chart(series: Mapping[str, list[float]], path: str | os.PathLike[str] | None,
                 title: str, ylabel: str, xlabel: str, from_loss: bool,
                 caption: str | None) -> Any:
    """One line per model over the layers: log scale from the loss side (gradients), or
    linear from the data side (similarities)."""
    from matplotlib.figure import Figure

    if not series:
        raise ValueError(f"{title}: no series to draw")
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    markers = "osD^v"
    for index, (label, values) in enumerate(series.items()):
        layers = len(values)
        position = np.arange(layers)
        ordered = np.asarray(values[::-1] if from_loss else values, dtype=float)
        ax.plot(position, ordered, marker=markers[index % len(markers)], label=label)
        ax.set_xticks(position, [f"layer {layers - 1 - p if from_loss else p}"
                                 for p in position])
    if from_loss:
        ax.set_yscale("log")
        plain_log_ticks(ax)
    else:
        ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(xlabel, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=10)
    fig.suptitle(title, x=0.02, ha="left", fontsize=12, fontweight="bold")
    if caption is not None:
        ax.set_title(textwrap.fill(caption, 95), loc="left", fontsize=10, color="#333333")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if path is not None:
        save_figure(fig, path, dpi=120)
    return fig
