"""The "apple" task: one word, two senses, and the clue that decides between them."""

from __future__ import annotations

import numpy as np

from tinygrad_attn.demo import apple


def test_every_sentence_has_one_apple_and_a_clue_of_its_sense() -> None:
    tokens, positions, labels = apple.generate(500, np.random.default_rng(0))
    rows = np.arange(len(tokens))
    assert tokens.shape == (500, apple.LENGTH) and tokens.dtype == np.int64
    assert ((tokens == apple.WORD_ID["apple"]).sum(axis=1) == 1).all()
    assert (tokens[rows, positions] == apple.WORD_ID["apple"]).all()
    for sense in (0, 1):
        mine = np.isin(tokens[labels == sense], apple.CLUE_IDS[sense]).sum(axis=1)
        other = np.isin(tokens[labels == sense], apple.CLUE_IDS[1 - sense]).sum(axis=1)
        assert ((mine >= 1) & (mine <= 2)).all() and (other == 0).all()
    # "apple" is found everywhere, so its place alone says nothing about the sense.
    assert set(np.unique(positions)) == set(range(apple.LENGTH))
    assert 0.4 < labels.mean() < 0.6


def test_the_example_pair_puts_apple_at_the_same_place() -> None:
    tokens, at = apple.pair()
    assert tokens.shape == (2, apple.LENGTH)
    assert (tokens[:, at] == apple.WORD_ID["apple"]).all()
    assert (tokens[0] != tokens[1]).sum() == 4  # the words before "apple" differ
