"""The synthetic long-range task behind the demo, built from the notes' example:

    "Xiaoming lives in a beautiful coastal city ... so his favourite sport is surfing."

Every sequence is ten six-word phrases and a six-word question, 66 tokens in all. One
phrase, ``xiaoming lives in a <place> <noun>``, decides the answer: its place word
(``coastal``, ``alpine``, ``lakeside``, ... three synonym sets) says which sport the last
token, ``[sport]``, stands for (surfing, skiing or rowing). The other phrases are
distractors: everyday filler, and *decoys* that use the same place words in other roles
(``he once visited a snowy town``). At least one decoy always comes after the deciding
phrase, so "the last place word seen" is wrong about half the time: only the place word
whose role is "where Xiaoming lives" decides.

Fixed six-word phrases keep generation fully vectorised (a phrase is a row of a template
table) and put the deciding word at position ``6 * slot + 4``, so the distance between
it and the answer takes the values 13, 19, ..., 61 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PHRASE_LEN = 6
NUM_SLOTS = 10  # phrases before the question
SEQ_LEN = PHRASE_LEN * (NUM_SLOTS + 1)  # 66 tokens, the question included
PLACE_OFFSET = 4  # where the place word sits inside a "... <place> <noun>" phrase

# The answer each class of place words decides, and the place words themselves.
SPORTS = ("surfing", "skiing", "rowing")
PLACES = (
    ("coastal", "seaside", "beach", "harbour"),
    ("mountain", "alpine", "snowy", "hillside"),
    ("lakeside", "riverside", "canal", "lake"),
)
NOUNS = ("city", "town", "village")
PLACE_SLOT, NOUN_SLOT = "<place>", "<noun>"

# Phrase templates, six words each. Row 0 decides; the decoy rows use place words in
# other roles; fillers mention none. "apple" appears as a company and as a fruit at the
# same position (index 3), so the two uses can be compared word for word.
DECIDING = ("xiaoming", "lives", "in", "the", PLACE_SLOT, NOUN_SLOT)
DECOYS = (
    ("he", "once", "visited", "a", PLACE_SLOT, NOUN_SLOT),
    ("he", "read", "about", "a", PLACE_SLOT, NOUN_SLOT),
    ("his", "cousin", "lives", "near", PLACE_SLOT, NOUN_SLOT),
    ("he", "dreams", "of", "a", PLACE_SLOT, NOUN_SLOT),
)
APPLE_FRUIT = ("he", "ate", "an", "apple", "after", "lunch")
APPLE_COMPANY = ("his", "sister", "joined", "apple", "last", "year")
FILLERS = (
    APPLE_FRUIT,
    APPLE_COMPANY,
    ("the", "weather", "was", "very", "nice", "today"),
    ("he", "likes", "to", "read", "old", "books"),
    ("his", "dog", "sleeps", "on", "the", "sofa"),
    ("the", "bus", "was", "late", "this", "morning"),
    ("his", "phone", "is", "made", "by", "apple"),
    ("she", "bought", "apple", "juice", "and", "bread"),
    ("they", "cook", "dinner", "together", "every", "day"),
    ("he", "plays", "chess", "with", "his", "father"),
)
QUESTION = ("so", "his", "favourite", "sport", "is", "[sport]")
APPLE_POSITION = 3  # index of "apple" inside APPLE_FRUIT and APPLE_COMPANY


def _build_vocab() -> list[str]:
    words = [PLACE_SLOT, NOUN_SLOT]
    for phrase in (DECIDING, *DECOYS, *FILLERS, QUESTION):
        words += phrase
    words += [w for group in PLACES for w in group] + list(NOUNS)
    return list(dict.fromkeys(words))  # unique, in first-seen order


VOCAB: list[str] = _build_vocab()
WORD_ID: dict[str, int] = {w: i for i, w in enumerate(VOCAB)}
VOCAB_SIZE = len(VOCAB)
NUM_CLASSES = len(SPORTS)

# Template table: row 0 the deciding phrase, then the decoys, then the fillers.
TEMPLATES = np.array([[WORD_ID[w] for w in p] for p in (DECIDING, *DECOYS, *FILLERS)])
FIRST_DECOY, FIRST_FILLER = 1, 1 + len(DECOYS)
PLACE_IDS = np.array([[WORD_ID[w] for w in group] for group in PLACES])  # (class, synonym)
NOUN_IDS = np.array([WORD_ID[w] for w in NOUNS])
QUESTION_IDS = np.array([WORD_ID[w] for w in QUESTION])


@dataclass
class Batch:
    """A batch of task sequences.

    Shapes: ``tokens`` (N, 66) int64 word ids; ``labels`` (N,) the sport's class;
    ``key_position`` (N,) where the deciding place word is; ``answer_position`` the index
    of ``[sport]`` (the last token), where the answer is read out.
    """

    tokens: np.ndarray
    labels: np.ndarray
    key_position: np.ndarray
    answer_position: int = SEQ_LEN - 1

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def distance(self) -> np.ndarray:
        """How many tokens the answer sits after the deciding word."""
        return self.answer_position - self.key_position


def generate(n: int, rng: np.random.Generator, deciding_slot: int | None = None,
             decoy_rate: float = 0.3) -> Batch:
    """Draw ``n`` sequences.

    ``deciding_slot`` fixes which of the ten phrases decides (0 = the first, the longest
    distance); by default it is drawn uniformly from 0..8, slot 9 being kept for at least
    one decoy after it. Every other phrase is a decoy with probability ``decoy_rate``,
    else a filler, and one phrase after the deciding one is always a decoy. Decoy place
    words are drawn from all classes, so they agree with the answer only by chance.
    """
    if deciding_slot is not None and not 0 <= deciding_slot < NUM_SLOTS - 1:
        raise ValueError(f"generate: deciding_slot must lie in [0, {NUM_SLOTS - 1}), "
                         f"got {deciding_slot}")
    rows = np.arange(n)
    labels = rng.integers(0, NUM_CLASSES, n)
    if deciding_slot is None:
        slot = rng.integers(0, NUM_SLOTS - 1, n)
    else:
        slot = np.full(n, deciding_slot)

    # Which template each phrase slot uses: filler, or a decoy with probability decoy_rate.
    phrase = rng.integers(FIRST_FILLER, len(TEMPLATES), (n, NUM_SLOTS))
    is_decoy = rng.random((n, NUM_SLOTS)) < decoy_rate
    # One slot strictly after the deciding one is always a decoy: the decoy after the key.
    after = slot + 1 + (rng.random(n) * (NUM_SLOTS - 1 - slot)).astype(np.int64)
    is_decoy[rows, after] = True
    decoy_kind = rng.integers(FIRST_DECOY, FIRST_FILLER, (n, NUM_SLOTS))
    phrase = np.where(is_decoy, decoy_kind, phrase)
    phrase[rows, slot] = 0

    tokens = TEMPLATES[phrase]  # (n, slots, 6)
    # Fill the <place> and <noun> holes: random classes for decoys, the label for the key.
    place_class = rng.integers(0, NUM_CLASSES, (n, NUM_SLOTS))
    place_class[rows, slot] = labels
    synonym = rng.integers(0, PLACE_IDS.shape[1], (n, NUM_SLOTS))
    places = PLACE_IDS[place_class, synonym]
    nouns = NOUN_IDS[rng.integers(0, len(NOUN_IDS), (n, NUM_SLOTS))]
    tokens = np.where(tokens == WORD_ID[PLACE_SLOT], places[..., None], tokens)
    tokens = np.where(tokens == WORD_ID[NOUN_SLOT], nouns[..., None], tokens)

    sequence = np.concatenate([tokens.reshape(n, -1), np.broadcast_to(QUESTION_IDS, (n, 6))],
                              axis=1)
    return Batch(sequence.astype(np.int64), labels.astype(np.int64),
                 (slot * PHRASE_LEN + PLACE_OFFSET).astype(np.int64))


def apple_pair(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Two task sequences that differ only in one phrase: "he ate an apple after lunch"
    (the fruit) in the first, "his sister joined apple last year" (the company) in the
    second, at the same slot. Returns the (2, 66) tokens and the position of "apple",
    which is the same in both, so the two "apple"s enter the encoder as the same vector.
    """
    base = generate(1, rng, deciding_slot=0).tokens[0]
    slot = 3  # any slot after the deciding phrase at slot 0
    pair = np.stack([base, base])
    start = slot * PHRASE_LEN
    pair[0, start:start + PHRASE_LEN] = [WORD_ID[w] for w in APPLE_FRUIT]
    pair[1, start:start + PHRASE_LEN] = [WORD_ID[w] for w in APPLE_COMPANY]
    return pair, start + APPLE_POSITION


def decoded(tokens: np.ndarray) -> str:
    """The words of one sequence, phrases separated by " | " for reading."""
    words = [VOCAB[i] for i in tokens]
    phrases = [" ".join(words[i:i + PHRASE_LEN]) for i in range(0, len(words), PHRASE_LEN)]
    return " | ".join(phrases)


def role_pair(rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Two task sequences with the same place word at the same position, deciding in
    the first ("xiaoming lives in the <place> <noun>") and a decoy in the second ("he
    once visited a <place> <noun>", Xiaoming's home being named in an earlier phrase and
    of another class). Returns the (2, 66) tokens and the place word's position."""
    slot, home_slot = 4, 1
    pair = np.stack([generate(1, rng, deciding_slot=slot).tokens[0]] * 2)
    start = slot * PHRASE_LEN
    place, noun = pair[0, start + PLACE_OFFSET], pair[0, start + PLACE_OFFSET + 1]
    pair[1, start:start + PHRASE_LEN] = TEMPLATES[FIRST_DECOY]
    pair[1, start + PLACE_OFFSET:start + PHRASE_LEN] = place, noun
    other_class = (int(np.argwhere(PLACE_IDS == place)[0, 0]) + 1) % NUM_CLASSES
    home = slice(home_slot * PHRASE_LEN, (home_slot + 1) * PHRASE_LEN)
    pair[1, home] = TEMPLATES[0]
    pair[1, home_slot * PHRASE_LEN + PLACE_OFFSET:home.stop] = PLACE_IDS[other_class, 0], noun
    return pair, start + PLACE_OFFSET
