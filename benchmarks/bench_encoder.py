"""One Transformer encoder layer, forward + backward of ``sum(out**2)``: tinygrad_attn
against a hand-written NumPy layer (and PyTorch when it is installed), all given the same
weights, interleaved in one process. Prints medians and ratios to the NumPy layer.

Run: python benchmarks/bench_encoder.py [--repeats N] [--sizes small,large]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_encoder import forward_backward  # noqa: E402

import tinygrad_attn as ta  # noqa: E402
from tinygrad_attn import nn  # noqa: E402

SIZES = {  # batch, length, d_model, heads, feed-forward width
    "large": (16, 128, 256, 8, 1024),
    "small": (4, 32, 64, 4, 256),
}


def make_ours(layer: nn.TransformerEncoderLayer, x: np.ndarray) -> Callable[[], None]:
    def step() -> None:
        layer.zero_grad()
        inp = ta.Tensor(x, requires_grad=True)
        out = layer(inp)
        (out * out).sum().backward()
    return step


def make_numpy(params: dict[str, np.ndarray], x: np.ndarray, heads: int
               ) -> Callable[[], None]:
    return lambda: forward_backward(x, params, heads)


def make_torch(params: dict[str, np.ndarray], x: np.ndarray, sizes: tuple[int, ...],
               dtype: np.dtype) -> Callable[[], None] | None:
    try:
        import torch
    except ImportError:
        return None
    _, _, width, heads, ff = sizes
    layer = torch.nn.TransformerEncoderLayer(width, heads, ff, dropout=0.0, batch_first=True)
    layer = layer.double() if dtype == np.float64 else layer
    layer.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in params.items()})
    inp = torch.from_numpy(x.copy()).requires_grad_()

    def step() -> None:
        layer.zero_grad()
        inp.grad = None
        out = layer(inp)
        (out * out).sum().backward()
    return step


def check_gradients(layer: nn.TransformerEncoderLayer, x: np.ndarray, heads: int) -> float:
    """Largest gradient difference between the framework and the NumPy layer, relative
    to the largest gradient of the same tensor (or, for gradients that are zero in exact
    arithmetic, like the key bias's, to the largest gradient of any tensor)."""
    layer.zero_grad()
    inp = ta.Tensor(x, requires_grad=True)
    out = layer(inp)
    (out * out).sum().backward()
    _, reference = forward_backward(x, layer.state_dict(), heads)
    pairs = [(inp.grad, reference["x"])]
    pairs += [(p.grad, reference[name]) for name, p in layer.named_parameters()]
    floor = 1e-3 * max(np.abs(ref).max() for _, ref in pairs)
    return float(max(np.abs(ours - ref).max() / max(np.abs(ref).max(), floor)
                     for ours, ref in pairs))


def run(size: str, dtype: np.dtype, repeats: int) -> None:
    sizes = SIZES[size]
    batch, length, width, heads, ff = sizes
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(width, heads, ff, dropout=0.0, batch_first=True).to(dtype)
    x = np.random.default_rng(0).standard_normal((batch, length, width)).astype(dtype)
    params = layer.state_dict()
    error = check_gradients(layer, x, heads)
    tolerance = 1e-3 if dtype == np.float32 else 1e-9
    if error > tolerance:
        raise SystemExit(f"gradients differ from the NumPy layer by {error:.2e}")
    steps = {"hand-written NumPy": make_numpy(params, x, heads),
             "tinygrad_attn": make_ours(layer, x)}
    torch_step = make_torch(params, x, sizes, dtype)
    if torch_step is not None:
        steps["PyTorch (CPU)"] = torch_step
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm up
        step()
    for _ in range(repeats):  # interleaved, so drift hits every implementation alike
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["hand-written NumPy"])
    print(f"\n{size}: B={batch} T={length} d={width} heads={heads} ff={ff}, "
          f"{np.dtype(dtype).name} (gradients agree to {error:.1e})")
    print(f"  {'implementation':<22} {'median ms':>10} {'x NumPy':>8}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<22} {median * 1e3:>10.2f} {median / base:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sizes", default="large,small")
    parser.add_argument("--dtypes", default="float32,float64")
    args = parser.parse_args()
    for size in args.sizes.split(","):
        for dtype in args.dtypes.split(","):
            run(size, np.dtype(dtype), args.repeats)


if __name__ == "__main__":
    main()
