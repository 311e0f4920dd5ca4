"""Core costs: per-op overhead on a long chain of tiny ops, and one
softmax + layer_norm + matmul block at (B=16, T=128, d=256), float32.

Run: python benchmarks/bench_core.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

import tinygrad_attn.ops as F
from tinygrad_attn import Tensor


def median_ms(fn: Callable[[], object], repeats: int = 15, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def chain(n_ops: int, dtype: type) -> Callable[[], None]:
    """(x * 1.0001 + 0.001) repeated: 2 ops per step on a (4, 4) tensor."""
    data = np.ones((4, 4), dtype=dtype)

    def run() -> None:
        x = Tensor(data, requires_grad=True)
        y = x
        for _ in range(n_ops // 2):
            y = y * 1.0001 + 0.001
        y.sum().backward()
    return run


def chain_numpy(n_ops: int, dtype: type) -> Callable[[], None]:
    """The same arithmetic in raw NumPy, no autograd: the floor."""
    data = np.ones((4, 4), dtype=dtype)

    def run() -> None:
        y = data
        for _ in range(n_ops // 2):
            y = y * 1.0001 + 0.001
    return run


def block(batch: int = 16, length: int = 128, width: int = 256) -> tuple[Callable, Callable]:
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, length, width), dtype=np.float32),
               requires_grad=True)
    w = Tensor(rng.standard_normal((width, width), dtype=np.float32) / 16, requires_grad=True)
    gamma = Tensor(np.ones(width, dtype=np.float32), requires_grad=True)
    beta = Tensor(np.zeros(width, dtype=np.float32), requires_grad=True)

    def forward() -> Tensor:
        h = F.layer_norm(x, width, gamma, beta)
        return F.softmax(h @ w, axis=-1)

    def forward_backward() -> None:
        out = forward()
        out.backward(np.ones(out.shape, dtype=np.float32))
        for t in (x, w, gamma, beta):
            t.grad = None
    return forward, forward_backward


def main() -> None:
    n_ops = 2000
    print(f"Per-op overhead: chain of {n_ops} ops on (4, 4), forward + backward")
    print(f"{'dtype':<8} {'tinygrad_attn us/op':>20} {'raw numpy fwd us/op':>20}")
    for dtype in (np.float64, np.float32):
        ours = median_ms(chain(n_ops, dtype)) * 1e3 / n_ops
        floor = median_ms(chain_numpy(n_ops, dtype)) * 1e3 / n_ops
        print(f"{np.dtype(dtype).name:<8} {ours:>20.2f} {floor:>20.2f}")
    forward, forward_backward = block()
    print("\nlayer_norm -> matmul -> softmax at (B=16, T=128, d=256), float32")
    print(f"  forward            {median_ms(forward):8.2f} ms")
    print(f"  forward + backward {median_ms(forward_backward):8.2f} ms")


if __name__ == "__main__":
    main()
