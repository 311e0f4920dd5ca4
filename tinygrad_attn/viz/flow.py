"""The residual story, measured: how much gradient reaches each layer's input.

``layer_input_grad_norms`` reads it off the graph (the tensors a layer consumes that were
made outside it); ``draw_gradient_flow`` charts it for several models side by side;
``residual_story`` builds post-norm, pre-norm and residual-free encoders with the same
weights, runs one batch through each, and writes their graphs and the chart (the
``python -m tinygrad_attn graph`` command).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tinygrad_attn.engine import toposort
from tinygrad_attn.tensor import Tensor
from tinygrad_attn.viz.replay import replay
from tinygrad_attn.viz.style import save_figure


def layer_input_grad_norms(root: Tensor, prefix: str = "layers") -> list[float]:
    """Norm of the total gradient reaching the input of each module ``prefix.0``,
    ``prefix.1``, ... (first layer first), from the last ``root.backward()``.

    A layer's input is the tensor it reads that was made outside it (parameters and
    tensors needing no gradient aside); layer 0's input needs ``requires_grad=True`` to
    be measured (NaN otherwise).
    """
    if root._backward_seed is None:
        raise ValueError("layer_input_grad_norms: call backward() on the root first")
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)(\.|$)")

    def layer_of(t: Tensor) -> int | None:
        match = pattern.match(t._ctx.scope) if t._ctx is not None else None
        return int(match.group(1)) if match else None

    rep = replay(root)
    inputs: dict[int, Tensor] = {}
    for node in toposort(root) if root._ctx is not None else []:
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
                       title: str = "Gradient norm reaching each layer's input") -> Any:
    """A log-scale line chart, last layer (nearest the loss) on the left, first on the
    right, one line per model. Writes ``path.svg`` and ``path.png`` when given."""
    return _layer_chart(series, path, title, "\u2016dL/d(layer input)\u2016",
                        "\u2190 nearer the loss          layer whose input is measured"
                        "          nearer the data \u2192", from_loss=True)


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
                          title: str = "How alike the tokens become, layer by layer") -> Any:
    """A line chart of :func:`token_similarity` per model, first layer on the left.
    Writes ``path.svg`` and ``path.png`` when given."""
    return _layer_chart(series, path, title, "mean cosine between positions",
                        "layer whose output is measured          nearer the output \u2192",
                        from_loss=False)


def _layer_chart(series: Mapping[str, list[float]], path: str | os.PathLike[str] | None,
                 title: str, ylabel: str, xlabel: str, from_loss: bool) -> Any:
    """One line per model over the layers: log scale from the loss side (gradients), or
    linear from the data side (similarities)."""
    from matplotlib.figure import Figure

    if not series:
        raise ValueError(f"{title}: no series to draw")
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
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
    else:
        ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if path is not None:
        save_figure(fig, path, dpi=120)
    return fig


def _no_residual_layer_class() -> type:
    from tinygrad_attn.nn import TransformerEncoderLayer

    class NoResidualEncoderLayer(TransformerEncoderLayer):
        """The post-norm layer with both ``x +`` removed: ``norm(block(x))``."""

        def forward(self, src: Tensor, src_mask: Any = None,
                    src_key_padding_mask: Any = None, is_causal: bool = False) -> Tensor:
            x = self.norm1(self._sa_block(src, src_mask, src_key_padding_mask, is_causal))
            return self.norm2(self._ff_block(x))

    return NoResidualEncoderLayer


MODELS = ("post-norm", "pre-norm", "no residual")


def build_encoder(kind: str, layers: int, d_model: int = 32, nhead: int = 4,
                  dim_feedforward: int = 64) -> Any:
    """An encoder of ``kind`` (one of :data:`MODELS`), dropout off."""
    from tinygrad_attn import nn

    if kind not in MODELS:
        raise ValueError(f"build_encoder: kind must be one of {MODELS}, got {kind!r}")
    cls = _no_residual_layer_class() if kind == "no residual" else nn.TransformerEncoderLayer
    layer = cls(d_model, nhead, dim_feedforward=dim_feedforward, dropout=0.0,
                norm_first=kind == "pre-norm")
    return nn.TransformerEncoder(layer, layers)


def residual_story(out_dir: str | os.PathLike[str], layers: int = 6,
                   graphs: tuple[str, ...] = MODELS, collapse_depth: int | None = 2,
                   seed: int = 0) -> dict[str, Any]:
    """Build the three encoders with the same weights, run one batch, backpropagate, and
    write each model's graph, the gradient-flow chart and the token-similarity chart (how
    much of the sequence's information survives each layer) into ``out_dir``.

    Returns {"norms": {model: [gradient norm per layer]}, "similarity": {model: [mean
    cosine between positions per layer]}, "files": [paths written]}.
    """
    from tinygrad_attn import random
    from tinygrad_attn.viz.graph import draw_graph

    if not isinstance(layers, int) or layers < 1:
        raise ValueError(f"residual_story: layers must be a positive int, got {layers!r}")
    unknown = [g for g in graphs if g not in MODELS]
    if unknown:
        raise ValueError(f"residual_story: unknown model(s) {unknown}; choose from {MODELS}")
    out = Path(out_dir)
    random.manual_seed(seed)
    rng = np.random.default_rng(seed)
    first = build_encoder(MODELS[0], layers)
    weights = first.state_dict()
    batch = rng.standard_normal((4, 8, 32)).astype(np.float32)
    projection = rng.standard_normal((4, 8, 32)).astype(np.float32)
    norms: dict[str, list[float]] = {}
    similarity: dict[str, list[float]] = {}
    files: list[Path] = []
    for kind in MODELS:
        model = first if kind == MODELS[0] else build_encoder(kind, layers)
        model.load_state_dict(weights)
        similarity[kind] = token_similarity(model, Tensor(batch))
        x = Tensor(batch.copy(), requires_grad=True)
        loss = (model(x) * Tensor(projection)).mean()
        loss.backward(retain_graph=True)
        norms[kind] = layer_input_grad_norms(loss)
        if kind in graphs:
            title = (f"{kind} encoder, {layers} layers \u2014 loss "
                     f"{float(loss.data):.4g}, after backward")
            graph = draw_graph(loss, collapse_depth=collapse_depth, title=title)
            name = "graph_" + kind.replace(" ", "_").replace("-", "_")
            files += list(graph.write(out / name).values())
    draw_gradient_flow(norms, out / "gradient_flow",
                       title=f"Gradient norm reaching each layer's input ({layers} layers)")
    draw_token_similarity(similarity, out / "token_similarity",
                          title=f"How alike the tokens become ({layers} layers)")
    files += [out / "gradient_flow.svg", out / "gradient_flow.png",
              out / "token_similarity.svg", out / "token_similarity.png"]
    return {"norms": norms, "similarity": similarity, "files": files}


def main(layers: int, norm: str, depth: int, out_dir: str) -> int:
    """``python -m tinygrad_attn graph``: run :func:`residual_story` and print the table."""
    choice = {"post": ("post-norm",), "pre": ("pre-norm",), "none": ("no residual",),
              "all": MODELS}[norm]
    if layers < 1 or depth < 0:
        print("graph: --layers must be >= 1 and --depth >= 0", file=sys.stderr)
        return 2
    result = residual_story(out_dir, layers=layers, graphs=choice,
                            collapse_depth=depth or None)
    print(f"Gradient norm reaching each layer's input ({layers} layers, one batch, "
          f"no training)")
    print(f"{'layer':>6} " + " ".join(f"{kind:>12}" for kind in MODELS))
    for i in reversed(range(layers)):
        row = " ".join(f"{result['norms'][kind][i]:>12.4g}" for kind in MODELS)
        print(f"{i:>6} {row}")
    print("\nHow alike the tokens are after each layer (mean cosine between positions; "
          "1 = every position holds the same vector)")
    print(f"{'layer':>6} " + " ".join(f"{kind:>12}" for kind in MODELS))
    for i in range(layers):
        row = " ".join(f"{result['similarity'][kind][i]:>12.3f}" for kind in MODELS)
        print(f"{i:>6} {row}")
    print("wrote:")
    for path in result["files"]:
        print(f"  {path}")
    return 0
