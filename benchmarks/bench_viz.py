"""How long drawing takes: a collapsed 6-layer encoder graph (budget 5 s) and an
uncollapsed 2-layer one (budget 10 s), from the graph walk to .dot, .svg and .png.

Run: python benchmarks/bench_viz.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

import tinygrad_attn as ta
from tinygrad_attn import nn, viz


def encoder_loss(layers: int) -> ta.Tensor:
    ta.manual_seed(0)
    rng = np.random.default_rng(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, layers)
    x = ta.Tensor(rng.standard_normal((4, 8, 32)).astype(np.float32), requires_grad=True)
    out = model(x)
    loss = (out * ta.Tensor(rng.standard_normal(out.shape).astype(np.float32))).mean()
    loss.backward(retain_graph=True)
    return loss


def measure(label: str, layers: int, depth: int | None, budget: float, out: Path) -> None:
    loss = encoder_loss(layers)
    start = time.perf_counter()
    graph = viz.draw_graph(loss, collapse_depth=depth)
    built = time.perf_counter()
    graph.write(out / label.replace(" ", "_"), formats=("dot", "svg"))
    svg = time.perf_counter()
    graph.write(out / label.replace(" ", "_"), formats=("png",))
    png = time.perf_counter()
    total = (built - start) + (png - built)
    nodes = graph.source.count(" [label=")
    print(f"{label:<28} {nodes:>5} nodes  build {built - start:6.3f} s  svg {svg - built:6.3f} s"
          f"  png {png - svg:6.3f} s  total {total:6.3f} s  (budget {budget:.0f} s) "
          f"{'ok' if total < budget else 'OVER'}")


def main() -> None:
    print(f"renderer: {viz.find_renderer()}")
    with tempfile.TemporaryDirectory() as tmp:
        measure("6 layers, collapse depth 2", 6, 2, 5.0, Path(tmp))
        measure("2 layers, every op", 2, None, 10.0, Path(tmp))


if __name__ == "__main__":
    main()
