"""Where one encoder-layer step spends its time, and what that predicts for more cores.

Runs the step on one thread with every parallel section timed: each call of
``parallel.run`` (its parts, and whether they call BLAS) and the time outside such
sections (Python, small NumPy calls, the few reductions that sum across rows and stay
on one thread). Then, for n threads, a section of k equal parts takes ceil(k/n)/k of its
one-thread time and the rest does not shrink:

    T(n) = serial + sum over sections of  time * ceil(k / n) / k

The model is a bound from above on the speed-up: it ignores memory bandwidth (that the
elementwise parts share), the pool's wake-up cost (tens of microseconds per section) and
BLAS losing efficiency on smaller parts. With ``--check`` it also times the step on
every thread count it can measure here, to put next to the prediction.

Run: python benchmarks/scaling_model.py [--size large] [--predict 1,2,4,8,16] [--check]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_encoder import SIZES, make_ours  # noqa: E402

import tinygrad_attn as ta  # noqa: E402
from tinygrad_attn import nn, parallel  # noqa: E402


def median_step_ms(step, repeats: int) -> float:
    step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def profile(step, repeats: int) -> tuple[float, dict[tuple[int, bool], float]]:
    """One-thread step time (ms) and the time (ms per step) in parallel sections, keyed
    by (number of parts, calls BLAS)."""
    sections: dict[tuple[int, bool], list[float]] = defaultdict(list)
    run = parallel.run

    def timed_run(work, parts, blas=False):
        start = time.perf_counter()
        run(work, parts, blas)
        sections[len(parts), blas].append(time.perf_counter() - start)

    ta.set_num_threads(1)
    parallel.run = timed_run
    try:
        step()
        sections.clear()
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        total = (time.perf_counter() - start) / repeats * 1e3
    finally:
        parallel.run = run
    return total, {key: sum(times) / repeats * 1e3 for key, times in sections.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="large", choices=sorted(SIZES))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--predict", default="1,2,4,8,16")
    parser.add_argument("--check", action="store_true",
                        help="also time the step on 1..cores threads")
    args = parser.parse_args()
    batch, length, width, heads, ff = SIZES[args.size]
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(width, heads, ff, dropout=0.0, batch_first=True)
    x = np.random.default_rng(0).standard_normal((batch, length, width)).astype(np.float32)
    step = make_ours(layer, x)
    cores = ta.get_num_threads()
    print(f"{args.size}: B={batch} T={length} d={width} heads={heads} ff={ff}, float32; "
          f"{cores} cores, load average {os.getloadavg()[0]:.2f}")
    total, sections = profile(step, args.repeats)
    whole = sum(t for (parts, _), t in sections.items() if parts == 1)
    split = {key: t for key, t in sections.items() if key[0] > 1}
    serial = total - sum(split.values())
    blas = sum(t for (_, uses_blas), t in split.items() if uses_blas)
    print(f"one thread: {total:.1f} ms per step")
    print(f"  split over the pool, matrix products (BLAS): {blas:6.1f} ms "
          f"({blas / total:.0%})")
    print(f"  split over the pool, elementwise and rows:   {sum(split.values()) - blas:6.1f} "
          f"ms ({(sum(split.values()) - blas) / total:.0%})")
    print(f"  on one thread: Python, small arrays, sums over rows: {serial:6.1f} ms "
          f"({serial / total:.0%}; {whole:.1f} ms of it in unsplit sections)")
    print("  parts per section (ms per step): " + ", ".join(
        f"{parts}{' BLAS' if uses_blas else ''}: {t:.1f}"
        for (parts, uses_blas), t in sorted(split.items())))
    measured = {}
    if args.check:
        for threads in range(1, cores + 1):
            ta.set_num_threads(threads)
            measured[threads] = median_step_ms(step, args.repeats)
        ta.set_num_threads(cores)
    print(f"\n  {'threads':>7} {'predicted ms':>13} {'speed-up':>9} {'measured ms':>12}")
    for threads in (int(n) for n in args.predict.split(",")):
        predicted = serial + sum(t * math.ceil(parts / threads) / parts
                                 for (parts, _), t in split.items())
        seen = f"{measured[threads]:12.1f}" if threads in measured else f"{'':>12}"
        print(f"  {threads:>7} {predicted:>13.1f} {total / predicted:>8.2f}x {seen}")


if __name__ == "__main__":
    main()
