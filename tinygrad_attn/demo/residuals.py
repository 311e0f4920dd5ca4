"""The residual experiment behind ``python -m tinygrad_attn graph``: post-norm, pre-norm
and residual-free encoders with the same weights, one batch each; how much gradient
reaches each layer, how alike the positions' vectors become, and each model's graph."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tinygrad_attn import nn, ops
from tinygrad_attn import random as ta_random
from tinygrad_attn.tensor import Tensor
from tinygrad_attn.viz import (
    draw_gradient_flow,
    draw_graph,
    draw_token_similarity,
    layer_input_grad_norms,
    token_similarity,
)


class NoResidualEncoderLayer(nn.TransformerEncoderLayer):
    """The post-norm layer with both ``x +`` removed: ``norm(block(x))``."""

    def forward(self, src: Tensor, src_mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool = False) -> Tensor:
        x = self.norm1(self._sa_block(src, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(self._ff_block(x))


MODELS = ("post-norm", "pre-norm", "no residual")


def build_encoder(kind: str, layers: int, d_model: int = 32, nhead: int = 4,
                  dim_feedforward: int = 64) -> nn.TransformerEncoder:
    """An encoder of ``kind`` (one of :data:`MODELS`), dropout off, (batch, seq, embed)."""
    if kind not in MODELS:
        raise ValueError(f"build_encoder: kind must be one of {MODELS}, got {kind!r}")
    cls = NoResidualEncoderLayer if kind == "no residual" else nn.TransformerEncoderLayer
    layer = cls(d_model, nhead, dim_feedforward=dim_feedforward, dropout=0.0,
                norm_first=kind == "pre-norm", batch_first=True)
    return nn.TransformerEncoder(layer, layers)


def _collapsed_at(similarity: list[float]) -> int | None:
    """The first layer after which every position holds nearly the same vector."""
    return next((i for i, s in enumerate(similarity) if s > 0.99), None)


def _similarity_caption(similarity: dict[str, list[float]]) -> str:
    none, post, pre = similarity["no residual"], similarity["post-norm"], similarity["pre-norm"]
    last = len(none) - 1
    kept = (f"with residuals they grow alike only slowly (cosine {post[-1]:.2f} post-norm, "
            f"{pre[-1]:.2f} pre-norm after layer {last})")
    collapsed = _collapsed_at(none)
    if collapsed is None:
        return (f"without residuals the positions grow alike faster (cosine {none[-1]:.2f} "
                f"after layer {last}); {kept}")
    return (f"no residual: every position holds the same vector from layer {collapsed} on "
            f"(cosine {none[collapsed]:.2f}), so the sequence's information is gone; {kept}")


def _flow_caption(norms: dict[str, list[float]], similarity: dict[str, list[float]]) -> str:
    pre, post, none = norms["pre-norm"], norms["post-norm"], norms["no residual"]
    text = (f"pre-norm: layer 0 gets {pre[0] / pre[-1]:.2g}x what the last layer gets "
            f"(the skips add every layer's gradient on the way down); post-norm "
            f"{post[0] / post[-1]:.2g}x. ")
    amount = "as much" if none[0] >= 0.8 * post[0] else "less"
    text += (f"Without residuals {amount} reaches layer 0 ({none[0]:.3g}, post-norm "
             f"{post[0]:.3g})")
    collapsed = _collapsed_at(similarity["no residual"])
    if collapsed is None:
        return text + "."
    joint = ", but" if amount == "as much" else ", and"
    return (text + f"{joint} from layer {collapsed} on every position holds the same vector "
            f"(see the token-similarity chart).")


def residual_story(out_dir: str | os.PathLike[str], layers: int = 6,
                   graphs: tuple[str, ...] = MODELS, collapse_depth: int | None = 2,
                   seed: int = 0) -> dict[str, Any]:
    """Build the three encoders with the same weights, run one batch through each with a
    classification loss on every position, backpropagate, and write each model's graph,
    the gradient-flow chart and the token-similarity chart into ``out_dir``.

    Returns {"norms": {model: [gradient norm per layer]}, "similarity": {model: [mean
    cosine between positions per layer]}, "files": [paths written]}.
    """
    if not isinstance(layers, int) or layers < 1:
        raise ValueError(f"residual_story: layers must be a positive int, got {layers!r}")
    unknown = [g for g in graphs if g not in MODELS]
    if unknown:
        raise ValueError(f"residual_story: unknown model(s) {unknown}; choose from {MODELS}")
    out = Path(out_dir)
    ta_random.manual_seed(seed)
    rng = np.random.default_rng(seed)
    first = build_encoder(MODELS[0], layers)
    weights = first.state_dict()
    classes = 4
    head = nn.Linear(32, classes)
    batch = rng.standard_normal((4, 8, 32)).astype(np.float32)
    targets = rng.integers(0, classes, (4 * 8,))
    norms: dict[str, list[float]] = {}
    similarity: dict[str, list[float]] = {}
    files: list[Path] = []
    for kind in MODELS:
        model = first if kind == MODELS[0] else build_encoder(kind, layers)
        model.load_state_dict(weights)
        similarity[kind] = token_similarity(model, Tensor(batch))
        x = Tensor(batch.copy(), requires_grad=True)
        # A loss that depends on every position: classify each one.
        loss = ops.cross_entropy(head(model(x)).reshape(-1, classes), targets)
        norms[kind] = layer_input_grad_norms(loss)
        if kind in graphs:
            title = (f"{kind} encoder, {layers} layers: cross-entropy on every position, "
                     f"loss {float(loss.data):.3g}")
            collapsed = _collapsed_at(similarity[kind])
            if collapsed is not None:  # gradients flow, but into vectors that are all alike
                title += (f"\nfrom layer {collapsed} on every position holds the same vector "
                          f"(mean cosine {similarity[kind][collapsed]:.2f}): the head sees "
                          f"one vector for the whole sequence")
            graph = draw_graph(loss, collapse_depth=collapse_depth, title=title)
            name = "graph_" + kind.replace(" ", "_").replace("-", "_")
            files += list(graph.write(out / name).values())
    draw_gradient_flow(norms, out / "gradient_flow", caption=_flow_caption(norms, similarity),
                       title=f"Gradient norm reaching each layer's input ({layers} layers)")
    draw_token_similarity(similarity, out / "token_similarity",
                          caption=_similarity_caption(similarity),
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
        row = " ".join(f"{result['norms'][kind][i]:>12.3g}" for kind in MODELS)
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
