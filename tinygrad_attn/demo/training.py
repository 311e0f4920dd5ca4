"""Training and measuring: a progress line, the training loop, accuracy, attention on
the deciding word, and how the encoder changes a word's vector with its context."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from tinygrad_attn import nn, ops, optim
from tinygrad_attn.demo import task
from tinygrad_attn.demo.models import AttentionClassifier
from tinygrad_attn.engine import no_grad


class Progress:
    """One line of progress. On a terminal it is rewritten in place with ``\\r``; in a
    log file or a pipe it is printed as plain lines, one per tenth of the run."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None,
                 width: int = 24) -> None:
        self.label, self.total, self.width = label, total, width
        self.stream = sys.stderr if stream is None else stream
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_draw = -math.inf
        self.next_plain = 0

    def update(self, step: int, loss: float, accuracy: float, seconds: float,
               force: bool = False) -> None:
        if self.tty:
            now = time.perf_counter()
            if not force and now - self.last_draw < 0.1:  # redrawing costs time too
                return
            self.last_draw = now
            done = int(self.width * step / max(self.total, 1))
            bar = "#" * done + "." * (self.width - done)
            self.stream.write(f"\r{self._text(step, loss, accuracy, seconds, bar)}")
            self.stream.flush()
        elif force or step >= self.next_plain:
            self.next_plain = step + max(self.total // 10, 1)
            self.stream.write(self._text(step, loss, accuracy, seconds) + "\n")
            self.stream.flush()

    def _text(self, step: int, loss: float, accuracy: float, seconds: float,
              bar: str | None = None) -> str:
        bar = f" [{bar}]" if bar else ""
        return (f"{self.label:<11} step {step:>5}/{self.total}{bar}  loss {loss:.4f}  "
                f"train acc {100 * accuracy:5.1f}%  {seconds:5.1f}s")

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class TrainLog:
    """What one training run did: per-step loss and batch accuracy, steps, seconds."""

    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    stopped_by: str = "steps"  # or "time"


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> float:
    """Scale all gradients down together so their joint norm is at most ``max_norm``
    (the RNN's gradients through 66 steps can spike); returns the norm before."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    if norm > max_norm:
        for g in grads:
            g *= max_norm / norm
    return norm


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train(model: nn.Module, rng: np.random.Generator, steps: int, time_budget: float,
          batch_size: int = 64, lr: float = 3e-3, label: str = "model",
          stream: TextIO | None = None, deciding_slot: int | None = None) -> TrainLog:
    """Train on fresh task batches with AdamW and cross-entropy until ``steps`` steps or
    ``time_budget`` seconds, whichever comes first (the step count keeps runs
    reproducible; the time budget is the cap). ``deciding_slot`` fixes the distance
    between the deciding word and the answer (see :func:`task.generate`)."""
    opt = optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    progress = Progress(label, steps, stream)
    log = TrainLog()
    warmup = max(steps // 20, 1)
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        if time.perf_counter() - start > time_budget:
            log.stopped_by = "time"
            break
        batch = task.generate(batch_size, rng, deciding_slot)
        logits = model(batch.tokens)
        loss = ops.cross_entropy(logits, batch.labels)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        opt.param_groups[0]["lr"] = learning_rate(step, steps, lr, warmup)
        opt.step()
        log.losses.append(loss.item())
        log.accuracies.append(float(np.mean(logits.data.argmax(-1) == batch.labels)))
        log.steps = step + 1
        # Averages over the last few batches read more steadily than one batch.
        progress.update(log.steps, float(np.mean(log.losses[-20:])),
                        float(np.mean(log.accuracies[-20:])), time.perf_counter() - start)
    log.seconds = time.perf_counter() - start
    if log.steps:
        progress.update(log.steps, float(np.mean(log.losses[-20:])),
                        float(np.mean(log.accuracies[-20:])), log.seconds, force=True)
    progress.close()
    return log


def predict(model: nn.Module, tokens: np.ndarray, chunk: int = 500) -> np.ndarray:
    """The predicted class of every sequence, in eval mode and without a graph."""
    model.eval()
    with no_grad():
        out = [model(tokens[i:i + chunk]).data.argmax(-1) for i in range(0, len(tokens),
                                                                          chunk)]
    return np.concatenate(out)


def accuracy(model: nn.Module, batch: task.Batch) -> float:
    return float(np.mean(predict(model, batch.tokens) == batch.labels))


def answer_attention(model: AttentionClassifier, batch: task.Batch,
                     chunk: int = 250) -> list[np.ndarray]:
    """Per layer, how the answer position spreads its attention: (N, heads, T)."""
    model.eval()
    rows: list[list[np.ndarray]] = [[] for _ in model.encoder.layers]
    with no_grad():
        for i in range(0, len(batch), chunk):
            weights = model.attention_weights(batch.tokens[i:i + chunk])
            for layer_rows, w in zip(rows, weights):
                layer_rows.append(w[:, :, batch.answer_position, :])
    return [np.concatenate(r) for r in rows]


def attention_summary(model: AttentionClassifier, batch: task.Batch) -> dict[str, list]:
    """The weight the answer position puts on the deciding word, and on all decoy place
    words together, per layer and head, averaged over ``batch``.

    Returns ``{"on_key": [[layer 0 heads], ...], "on_decoys": [[...], ...]}``.
    """
    n = np.arange(len(batch))
    place_positions = np.arange(task.NUM_SLOTS) * task.PHRASE_LEN + task.PLACE_OFFSET
    place_tokens = batch.tokens[:, place_positions]
    is_decoy = np.isin(place_tokens, task.PLACE_IDS) & (
        place_positions[None, :] != batch.key_position[:, None])
    on_key, on_decoys = [], []
    for rows in answer_attention(model, batch):
        on_key.append(rows[n, :, batch.key_position].mean(axis=0).tolist())
        decoy_weight = (rows[:, :, place_positions] * is_decoy[:, None, :]).sum(axis=-1)
        on_decoys.append(decoy_weight.mean(axis=0).tolist())
    return {"on_key": on_key, "on_decoys": on_decoys}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))


def context_similarity(model: AttentionClassifier, tokens: np.ndarray,
                       position: int) -> tuple[float, float]:
    """Cosine similarity of the word at ``position`` in two sequences (tokens (2, T)):
    before attention (embedding + position, what the encoder receives) and after the
    encoder. The same word at the same position gives exactly 1.0 before."""
    model.eval()
    with no_grad():
        before = model.embed(tokens).data[:, position]
        after = model.encode(tokens).data[:, position]
    return cosine(before[0], before[1]), cosine(after[0], after[1])
