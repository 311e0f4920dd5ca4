"""How long drawing takes, from the graph walk to .dot, .svg and .png: a collapsed 6-layer
encoder (budget 5 s), an uncollapsed 2-layer one (budget 10 s), the encoder's output
drawn from a seed (d something / d output, budget 5 s), and the backward stepper's
frames and page (budget 20 s).

Run: python benchmarks/bench_viz.py
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import numpy as np

import tinygrad_attn as ta
from tinygrad_attn import nn, ops, viz


def encoder_run(layers: int) -> tuple[ta.Tensor, ta.Tensor, np.ndarray]:
    """(cross-entropy loss, encoder output, a seed for the output) of a toy task, after
    ``loss.backward(retain_graph=True)`` (the graph kept for drawing)."""
    ta.manual_seed(0)
    rng = np.random.default_rng(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
    model, head = nn.TransformerEncoder(layer, layers), nn.Linear(32, 4)
    x = rng.standard_normal((4, 8, 32)).astype(np.float32)
    out = model(ta.Tensor(x, requires_grad=True))
    loss = ops.cross_entropy(head(out).reshape(-1, 4), x[..., :4].argmax(-1).reshape(-1))
    loss.backward(retain_graph=True)
    return loss, out, rng.standard_normal(out.shape).astype(np.float32)


def _size(svg: str) -> str:
    width, height = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
    return f"{float(width) * 4 / 3:.0f}x{float(height) * 4 / 3:.0f} px"


def measure(label: str, root: ta.Tensor, depth: int | None, budget: float, out: Path,
            seed: np.ndarray | None = None) -> None:
    start = time.perf_counter()
    graph = viz.draw_graph(root, collapse_depth=depth, seed=seed)
    built = time.perf_counter()
    stem = out / label.replace(" ", "_").replace(",", "")
    paths = graph.write(stem, formats=("dot", "svg"))
    svg = time.perf_counter()
    graph.write(stem, formats=("png",))
    png = time.perf_counter()
    nodes = len(re.findall(r"^\s*[nm]\d+ \[", graph.source, re.M))
    total = png - start
    print(f"{label:<30} {nodes:>4} nodes {_size(paths['svg'].read_text()):>14}  "
          f"build {built - start:6.3f} s  svg {svg - built:6.3f} s  png {png - svg:6.3f} s  "
          f"total {total:6.3f} s  (budget {budget:.0f} s) {'ok' if total < budget else 'OVER'}")


def measure_stepper(loss: ta.Tensor, budget: float, out: Path) -> None:
    start = time.perf_counter()
    viz.backward_stepper(loss, out / "stepper", collapse_depth=3)
    total = time.perf_counter() - start
    frames = len(list((out / "stepper").glob("frame_*.svg")))
    print(f"{'stepper, 2 layers, depth 3':<30} {frames:>4} frames {'':>13}  total "
          f"{total:6.3f} s  (budget {budget:.0f} s) {'ok' if total < budget else 'OVER'}")


def main() -> None:
    print(f"renderer: {viz.find_renderer()}")
    with tempfile.TemporaryDirectory() as tmp:
        loss6, _, _ = encoder_run(6)
        loss2, out2, seed2 = encoder_run(2)
        measure("6 layers, collapse depth 2", loss6, 2, 5.0, Path(tmp))
        measure("2 layers, every op", loss2, None, 10.0, Path(tmp))
        measure("2 layers, output from a seed", out2, 2, 5.0, Path(tmp), seed=seed2)
        measure_stepper(loss2, 20.0, Path(tmp))


if __name__ == "__main__":
    main()
