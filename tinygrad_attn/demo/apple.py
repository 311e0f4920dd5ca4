"""One word, two meanings: "apple" the fruit and "apple" the company.

A static embedding gives "apple" one vector whatever it means. Here a small encoder must
say, at the word "apple" itself, which apple a sentence means; the only clue is another
word somewhere in the sentence ("ate", "sweet", ... or "shares", "iphone", ...). To
answer, attention has to pull that clue into "apple"'s vector, so after training the two
apples' vectors differ, although both enter the encoder as the same vector (the same word
at the same position).

:func:`train_and_measure` trains the model for a few seconds and returns the cosine
similarity of the two apples' vectors before the encoder (1.0) and after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinygrad_attn import ops, optim
from tinygrad_attn import random as ta_random
from tinygrad_attn.demo.models import AttentionClassifier
from tinygrad_attn.demo.training import cosine
from tinygrad_attn.engine import no_grad
from tinygrad_attn.tensor import Tensor

__all__ = ["SENSES", "AppleResult", "encode", "generate", "pair", "read_out",
           "train_and_measure"]

SENSES = ("fruit", "company")
LENGTH = 6  # words per sentence
# The words that say which apple is meant, one list per sense, and words that say nothing.
CLUES = (
    ("ate", "sweet", "ripe", "juice", "pie", "peeled", "tree", "fresh"),
    ("shares", "iphone", "investors", "stock", "ceo", "joined", "software", "laptop"),
)
NEUTRAL = ("she", "he", "a", "of", "the", "today", "bought", "at", "new", "some", "likes",
           "saw", "about", "big")
VOCAB: list[str] = ["apple", *CLUES[0], *CLUES[1], *NEUTRAL]
WORD_ID: dict[str, int] = {w: i for i, w in enumerate(VOCAB)}
CLUE_IDS = np.array([[WORD_ID[w] for w in words] for words in CLUES])  # (sense, clue)
NEUTRAL_IDS = np.array([WORD_ID[w] for w in NEUTRAL])
# The pair the tutorial and the report read: "apple" is word 4 in both.
EXAMPLE = ("she ate a sweet apple today", "investors bought shares of apple today")


def encode(sentence: str) -> np.ndarray:
    """Word ids of a sentence of known words. Shape: (LENGTH,) int64."""
    return np.array([WORD_ID[w] for w in sentence.split()], dtype=np.int64)


def generate(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` sentences of :data:`LENGTH` words: "apple" at a random place, one or two clue
    words of one sense at other random places, neutral words elsewhere.

    Returns ``(tokens, positions, labels)``: shapes (n, LENGTH), (n,) where "apple" is,
    and (n,) the sense (0 fruit, 1 company), all int64.
    """
    rows = np.arange(n)
    labels = rng.integers(0, len(SENSES), n)
    tokens = NEUTRAL_IDS[rng.integers(0, len(NEUTRAL_IDS), (n, LENGTH))]
    # A random order of the positions: the first holds "apple", the next one or two clues.
    order = np.argsort(rng.random((n, LENGTH)), axis=1)
    positions = order[:, 0]
    tokens[rows, positions] = WORD_ID["apple"]
    clues = CLUE_IDS[labels[:, None], rng.integers(0, CLUE_IDS.shape[1], (n, 2))]
    tokens[rows, order[:, 1]] = clues[:, 0]
    second = rng.random(n) < 0.5
    tokens[rows[second], order[second, 2]] = clues[second, 1]
    return tokens.astype(np.int64), positions.astype(np.int64), labels.astype(np.int64)


def read_out(model: AttentionClassifier, tokens: np.ndarray,
             positions: np.ndarray) -> Tensor:
    """The sense logits read from each sentence's "apple" vector after the encoder.

    Shape: tokens (N, LENGTH), positions (N,) -> logits (N, 2).
    """
    return model.head(model.encode(tokens)[np.arange(len(tokens)), positions])


def pair() -> tuple[np.ndarray, int]:
    """The two sentences of :data:`EXAMPLE`, shape (2, LENGTH), and where "apple" is."""
    tokens = np.stack([encode(s) for s in EXAMPLE])
    return tokens, EXAMPLE[0].split().index("apple")


@dataclass
class AppleResult:
    """The trained model and what was measured on it."""

    model: AttentionClassifier
    accuracy: float  # held-out: the sense read from "apple"'s vector
    cosine_before: float  # the example pair, what the encoder receives
    cosine_after: float  # the example pair, the encoder's output
    mean_cosine_after: float  # over held-out pairs with "apple" at the same place
    steps: int


def train_and_measure(seed: int = 0, steps: int = 150, batch_size: int = 32,
                      lr: float = 5e-3) -> AppleResult:
    """Train a two-layer encoder (the demo's architecture, d_model 32) to name the sense of
    "apple", then measure the cosine of the two apples' vectors. About two seconds."""
    ta_random.manual_seed(seed)
    rng = np.random.default_rng([seed, 7])
    model = AttentionClassifier(len(VOCAB), len(SENSES), d_model=32, nhead=4, num_layers=2,
                                dim_feedforward=64, max_len=LENGTH)
    opt = optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        tokens, positions, labels = generate(batch_size, rng)
        loss = ops.cross_entropy(read_out(model, tokens, positions), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    model.eval()
    tokens, positions, labels = generate(1000, np.random.default_rng([seed, 8]))
    with no_grad():
        predicted = read_out(model, tokens, positions).data.argmax(-1)
        example, at = pair()
        before = model.embed(example).data[:, at]
        after = model.encode(example).data[:, at]
        # Held-out pairs: the same sentences with the other sense's clues put in.
        other = tokens.copy()
        for sense in range(len(SENSES)):
            for k in range(CLUE_IDS.shape[1]):
                other[tokens == CLUE_IDS[sense, k]] = CLUE_IDS[1 - sense, k]
        rows = np.arange(len(tokens))
        first = model.encode(tokens).data[rows, positions]
        second = model.encode(other).data[rows, positions]
    mean_after = float(np.mean([cosine(a, b) for a, b in zip(first, second)]))
    return AppleResult(model, float(np.mean(predicted == labels)), cosine(*before),
                       cosine(*after), mean_after, steps)
