"""The demo model's training throughput (tokens per second) and the peak memory of one of
its training steps (data, forward, backward, gradient clipping, AdamW).

Run: python benchmarks/bench_train.py [--steps N]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

import tinygrad_attn as ta
from tinygrad_attn import ops, optim
from tinygrad_attn.demo import Config, task
from tinygrad_attn.demo.models import AttentionClassifier
from tinygrad_attn.demo.training import clip_grad_norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    config = Config()
    ta.manual_seed(0)
    model = AttentionClassifier(task.VOCAB_SIZE, task.NUM_CLASSES, config.d_model,
                                config.nhead, config.num_layers, config.dim_feedforward)
    opt = optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    rng = np.random.default_rng(0)

    def step() -> None:
        batch = task.generate(config.batch_size, rng)
        loss = ops.cross_entropy(model(batch.tokens), batch.labels)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        opt.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    tokens = args.steps * config.batch_size * task.SEQ_LEN
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"Demo model ({model.num_parameters()} parameters; batch {config.batch_size} x "
          f"{task.SEQ_LEN} tokens, d_model {config.d_model}, {config.num_layers} layers)")
    print(f"  {seconds / args.steps * 1e3:.2f} ms per training step, "
          f"{tokens / seconds:,.0f} tokens/s")
    print(f"  peak memory of one step (tracemalloc): {peak / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
