"""One Transformer encoder layer, forward + backward of ``sum(out**2)``: tinygrad_attn
against a hand-written NumPy layer (and PyTorch when it is installed), all given the same
weights, interleaved in one process. Prints medians and ratios to the NumPy layer, and
with several thread counts a scaling table (each count interleaved with the others).

Threads: tinygrad_attn's ``set_num_threads`` (its pool and NumPy's BLAS), the same BLAS
thread count for the hand-written layer, ``torch.set_num_threads`` for PyTorch.

Run: python benchmarks/bench_encoder.py [--repeats N] [--sizes small,large]
                                        [--threads 1,2,N]   (N: every core) [--pause S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import threadpoolctl

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


def set_threads(count: int) -> None:
    ta.set_num_threads(count)  # the pool, and NumPy's BLAS for the hand-written layer too
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)


def run(size: str, dtype: np.dtype, repeats: int, thread_counts: list[int],
        pause: float) -> None:
    sizes = SIZES[size]
    batch, length, width, heads, ff = sizes
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(width, heads, ff, dropout=0.0,
                                       batch_first=True).to(dtype)
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
    times = {(count, name): [] for count in thread_counts for name in steps}
    for count in thread_counts:  # warm up
        set_threads(count)
        for step in steps.values():
            step()
    for _ in range(repeats):  # interleaved, so drift hits every implementation alike
        for count in thread_counts:
            set_threads(count)
            for name, step in steps.items():
                # OpenBLAS's and OpenMP's idle threads spin for up to ~0.1 s after a call,
                # taking cores from whatever runs next: let them fall asleep, then time
                # the second of two steps (threads awake, as in a training loop).
                time.sleep(pause)
                step()
                start = time.perf_counter()
                step()
                times[count, name].append(time.perf_counter() - start)
    median = {key: statistics.median(samples) * 1e3 for key, samples in times.items()}
    print(f"\n{size}: B={batch} T={length} d={width} heads={heads} ff={ff}, "
          f"{np.dtype(dtype).name} (gradients agree to {error:.1e})")
    for count in thread_counts:
        base = median[count, "hand-written NumPy"]
        print(f"  {count} thread{'s' if count > 1 else ''}:")
        print(f"    {'implementation':<22} {'median ms':>10} {'x NumPy':>8}")
        for name in steps:
            print(f"    {name:<22} {median[count, name]:>10.2f} "
                  f"{median[count, name] / base:>8.2f}")
    if len(thread_counts) > 1:
        print_scaling(median, list(steps), thread_counts)


def print_scaling(median: dict, names: list[str], thread_counts: list[int]) -> None:
    """Median ms per thread count, the speed-up over the first count, and the ratios."""
    first = thread_counts[0]
    ours = "tinygrad_attn"
    others = [name for name in names if name != ours]
    header = " | ".join(["threads", *(f"{name} ms" for name in names),
                         *(f"ours / {name.split()[0]}" for name in others),
                         f"ours: speed-up over {first}"])
    print(f"\n  | {header} |")
    print("  |" + " --- |" * (header.count("|") + 1))
    for count in thread_counts:
        cells = [str(count), *(f"{median[count, name]:.1f}" for name in names),
                 *(f"{median[count, ours] / median[count, name]:.2f}" for name in others),
                 f"{median[first, ours] / median[count, ours]:.2f}x"]
        print("  | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sizes", default="large,small")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--pause", type=float, default=0.2,
                        help="seconds of sleep before each implementation's pair of "
                             "steps, of which the second is timed (0: none)")
    parser.add_argument("--threads", default=str(ta.get_num_threads()),
                        help="comma-separated thread counts; N means every core "
                             f"(here {ta.get_num_threads()}); default: N")
    args = parser.parse_args()
    cores = ta.get_num_threads()
    thread_counts = [cores if t.strip().upper() == "N" else int(t)
                     for t in args.threads.split(",")]
    thread_counts = list(dict.fromkeys(thread_counts))  # 1,2,N on 2 cores: 1,2
    print(f"{cores} cores; BLAS: {blas_description()}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for size in args.sizes.split(","):
        for dtype in args.dtypes.split(","):
            run(size, np.dtype(dtype), args.repeats, thread_counts, args.pause)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def blas_description() -> str:
    info = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    return ", ".join(f"{lib['internal_api']} {lib['version']} {lib.get('architecture', '')} "
                     f"{lib.get('threading_layer', '')}" for lib in info) or "unknown"


if __name__ == "__main__":
    main()
