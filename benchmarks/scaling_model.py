"""Where one encoder-layer step spends its time, and what that predicts for more cores.

For each thread count n, runs the step on one core with the arrays split as n threads
would split them, every parallel section timed: each call of ``parallel.run`` (its
parts, and whether they call BLAS) and the time outside such sections (Python, small
NumPy calls, the reductions that sum across rows and stay on one thread). A section of k
equal parts then takes ceil(k/n)/k of that time on n threads, and the rest does not
shrink:

    T(n) = serial(n) + sum over sections of  time(n) * ceil(k / n) / k

(Splitting for n threads costs a little on one core, e.g. each part of a matrix product
packs the other operand anew; the profile at n includes that.)

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
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import median_ms  # noqa: E402
from bench_encoder import SIZES, make_ours  # noqa: E402

import tinygrad_attn as ta  # noqa: E402
from tinygrad_attn import nn, parallel  # noqa: E402


def profile(step, repeats: int, threads: int
            ) -> tuple[float, dict[tuple[int, bool], float]]:
    """Step time (ms) on one core with the arrays split for ``threads`` threads, and the
    time (ms per step) in parallel sections, keyed by (number of parts, calls BLAS)."""
    sections: dict[tuple[int, bool], list[float]] = defaultdict(list)
    run = parallel.run

    def timed_run(work, parts, blas=False):
        start = time.perf_counter()
        for part in parts:  # one after another, on this thread
            work(part)
        sections[len(parts), blas].append(time.perf_counter() - start)

    ta.set_num_threads(1)  # BLAS on one thread
    parallel._num_threads = threads  # ...and the arrays split as for `threads`
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
        ta.set_num_threads(1)
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
    predictions = {}
    for threads in (int(n) for n in args.predict.split(",")):
        total, sections = profile(step, args.repeats, threads)
        split = {key: t for key, t in sections.items() if key[0] > 1}
        serial = total - sum(split.values())
        blas = sum(t for (_, uses_blas), t in split.items() if uses_blas)
        rows = sum(split.values()) - blas
        predictions[threads] = serial + sum(t * math.ceil(parts / threads) / parts
                                            for (parts, _), t in split.items())
        print(f"split for {threads:>2} threads, run on one: {total:6.1f} ms = products "
              f"{blas:5.1f} ({blas / total:3.0%}) + rows {rows:5.1f} ({rows / total:3.0%}) "
              f"+ one-thread work {serial:5.1f} ({serial / total:3.0%}); parts: " + ", ".join(
                  f"{parts}{'b' if uses_blas else ''}" for parts, uses_blas in sorted(split)))
    measured = {}
    if args.check:
        for threads in range(1, cores + 1):
            ta.set_num_threads(threads)
            measured[threads] = median_ms(step, args.repeats, warmup=1)
        ta.set_num_threads(cores)
    one = predictions.get(1) or next(iter(predictions.values()))
    print(f"\n  {'threads':>7} {'predicted ms':>13} {'speed-up':>9} {'measured ms':>12}")
    for threads, predicted in predictions.items():
        seen = f"{measured[threads]:12.1f}" if threads in measured else f"{'':>12}"
        print(f"  {threads:>7} {predicted:>13.1f} {one / predicted:>8.2f}x {seen}")


if __name__ == "__main__":
    main()
