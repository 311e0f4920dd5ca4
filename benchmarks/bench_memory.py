"""Peak memory of one training step of an encoder layer (forward, backward, SGD update),
tinygrad_attn against the hand-written NumPy layer, measured with tracemalloc (NumPy
reports its array buffers to it).

Run: python benchmarks/bench_memory.py
"""

from __future__ import annotations

import os
import sys
import tracemalloc
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_encoder import forward_backward  # noqa: E402

import tinygrad_attn as ta  # noqa: E402
from tinygrad_attn import nn, optim  # noqa: E402


def peak_mib(step: Callable[[], None]) -> float:
    step()  # first step allocates optimizer state and caches
    tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - baseline) / 2**20


def main() -> None:
    batch, length, width, heads, ff = 16, 128, 256, 8, 1024
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(width, heads, ff, dropout=0.0, batch_first=True)
    x = np.random.default_rng(0).standard_normal((batch, length, width)).astype(np.float32)
    sgd = optim.SGD(layer.parameters(), lr=1e-3)
    params = layer.state_dict()

    def ours() -> None:
        sgd.zero_grad()
        out = layer(ta.Tensor(x))
        (out * out).sum().backward()
        sgd.step()

    def numpy_step() -> None:
        _, grads = forward_backward(x, params, heads)
        for name, value in params.items():
            value -= 1e-3 * grads[name]

    activations = batch * length * width * 4 / 2**20
    print(f"Peak memory above the weights, one training step, B={batch} T={length} "
          f"d={width} heads={heads} ff={ff}, float32 (one activation = {activations:.0f} MiB)")
    base = peak_mib(numpy_step)
    mine = peak_mib(ours)
    print(f"  hand-written NumPy  {base:8.1f} MiB  1.00")
    print(f"  tinygrad_attn       {mine:8.1f} MiB  {mine / base:.2f}")


if __name__ == "__main__":
    main()
