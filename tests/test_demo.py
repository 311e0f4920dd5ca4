"""The demo: its task generator, its RNN's gradient, and a fast end-to-end run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn.demo import (
    Config,
    DemoResult,
    run,
    task,
)
from tinygrad_attn.demo.models import AttentionClassifier, VanillaRNN
from tinygrad_attn.demo.training import Progress, predict

PLACE_POSITIONS = np.arange(task.NUM_SLOTS) * task.PHRASE_LEN + task.PLACE_OFFSET


def _place_class(tokens: np.ndarray) -> np.ndarray:
    """The class of each place word id (-1 for words that are not place words)."""
    lookup = np.full(task.VOCAB_SIZE, -1)
    for cls, ids in enumerate(task.PLACE_IDS):
        lookup[ids] = cls
    return lookup[tokens]


# ---- the task ----
def test_sequences_have_the_documented_shape() -> None:
    batch = task.generate(300, np.random.default_rng(0))
    assert batch.tokens.shape == (300, task.SEQ_LEN)
    assert 60 <= task.SEQ_LEN <= 70
    assert batch.tokens.dtype == np.int64 and batch.labels.dtype == np.int64
    assert batch.tokens.min() >= 0 and batch.tokens.max() < task.VOCAB_SIZE
    # No unfilled template holes, and every sequence ends with the question.
    assert not np.isin(batch.tokens, [task.WORD_ID[task.PLACE_SLOT],
                                      task.WORD_ID[task.NOUN_SLOT]]).any()
    question = [task.WORD_ID[w] for w in task.QUESTION]
    assert (batch.tokens[:, -len(question):] == question).all()
    assert set(np.unique(batch.labels)) == set(range(task.NUM_CLASSES))


def test_the_word_after_lives_in_the_decides_the_label() -> None:
    batch = task.generate(500, np.random.default_rng(1))
    rows = np.arange(len(batch))
    context = [task.WORD_ID[w] for w in task.DECIDING[:task.PLACE_OFFSET]]
    for k, word in enumerate(context):  # the deciding phrase precedes the key word
        offset = task.PLACE_OFFSET - k
        assert (batch.tokens[rows, batch.key_position - offset] == word).all()
    assert (_place_class(batch.tokens[rows, batch.key_position]) == batch.labels).all()
    # Exactly one deciding phrase per sequence.
    assert ((batch.tokens == task.WORD_ID["xiaoming"]).sum(axis=1) == 1).all()


def test_decoys_follow_the_deciding_word_and_often_disagree() -> None:
    batch = task.generate(500, np.random.default_rng(2))
    classes = _place_class(batch.tokens[:, PLACE_POSITIONS])  # (N, slots), -1 if none
    is_key = PLACE_POSITIONS[None, :] == batch.key_position[:, None]
    decoy = (classes >= 0) & ~is_key
    after = PLACE_POSITIONS[None, :] > batch.key_position[:, None]
    assert (decoy & after).any(axis=1).all()  # a decoy after the key, every time
    # Decoys are drawn from every class, so the last place word seen is often wrong.
    last_place = np.where(classes >= 0, np.arange(task.NUM_SLOTS), -1).max(axis=1)
    last_class = classes[np.arange(len(batch)), last_place]
    assert 0.4 < np.mean(last_class != batch.labels) < 0.9


def test_distance_and_fixed_slots() -> None:
    batch = task.generate(50, np.random.default_rng(3), deciding_slot=0)
    assert (batch.key_position == task.PLACE_OFFSET).all()
    assert (batch.distance == task.SEQ_LEN - 1 - task.PLACE_OFFSET).all()
    distances = task.generate(2000, np.random.default_rng(3)).distance
    assert distances.min() >= 13 and distances.max() == 61
    with pytest.raises(ValueError, match="deciding_slot"):
        task.generate(2, np.random.default_rng(0), deciding_slot=task.NUM_SLOTS - 1)


def test_generation_is_reproducible_from_the_seed() -> None:
    a = task.generate(64, np.random.default_rng(7))
    b = task.generate(64, np.random.default_rng(7))
    c = task.generate(64, np.random.default_rng(8))
    assert (a.tokens == b.tokens).all() and (a.labels == b.labels).all()
    assert not (a.tokens == c.tokens).all()


def test_word_pairs_put_the_same_word_at_the_same_position() -> None:
    for make, word in ((task.apple_pair, "apple"), (task.role_pair, None)):
        tokens, position = make(np.random.default_rng(4))
        assert tokens.shape == (2, task.SEQ_LEN)
        assert tokens[0, position] == tokens[1, position]
        if word:
            assert task.VOCAB[tokens[0, position]] == word
        assert (tokens[0] != tokens[1]).any()


# ---- the models ----
def test_rnn_gradient_matches_finite_differences() -> None:
    ta.manual_seed(0)
    rnn = VanillaRNN(vocab_size=6, num_classes=3, embed_dim=3, hidden_size=4).double()
    tokens = np.random.default_rng(0).integers(0, 6, (2, 5))
    x = ta.Tensor(np.random.default_rng(1).standard_normal((2, 5, 3)), requires_grad=True)
    # The recurrence alone (gradcheck perturbs the float64 parameters in place)...
    assert ta.gradcheck(lambda x, *weights: rnn.hidden_states(x),
                        [x, rnn.w_xh, rnn.w_hh, rnn.b])
    # ...and the whole model, embedding and read-out included, through the loss.
    labels = np.array([0, 2])
    assert ta.gradcheck(lambda *params: ta.ops.cross_entropy(rnn(tokens), labels),
                        rnn.parameters())


def test_attention_weights_are_per_head_and_normalised() -> None:
    ta.manual_seed(0)
    model = AttentionClassifier(task.VOCAB_SIZE, task.NUM_CLASSES, d_model=16, nhead=2)
    tokens = task.generate(3, np.random.default_rng(0)).tokens
    weights = model.attention_weights(tokens)
    assert len(weights) == 2
    for w in weights:
        assert w.shape == (3, 2, task.SEQ_LEN, task.SEQ_LEN)
        np.testing.assert_allclose(w.sum(axis=-1), 1.0, rtol=1e-5)
    assert model(tokens).shape == (3, task.NUM_CLASSES)


def test_progress_is_plain_text_off_a_terminal() -> None:
    stream = io.StringIO()
    bar = Progress("model", 100, stream)
    for step in range(1, 101):
        bar.update(step, 1.0 / step, 0.5, 0.01 * step)
    bar.update(100, 0.01, 0.5, 1.0, force=True)
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text
    assert 5 <= text.count("\n") <= 12
    assert "loss" in text and "acc" in text


# ---- end to end ----
@pytest.fixture(scope="module")
def fast_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, Path, str]:
    """A seconds-long run."""
    out_dir = tmp_path_factory.mktemp("demo")
    # A generous time budget: the step counts, not the machine's speed, end training.
    config = Config(steps=150, rnn_steps=20, batch_size=32, lr=3e-3, test_size=200,
                    distance_test_size=60, single_distance_slots=(8,),
                    single_distance_steps=5, time_budget=600.0)
    printed = io.StringIO()
    result = run(out_dir, seed=3, config=config, out=printed, progress=io.StringIO())
    return result, out_dir, printed.getvalue()


def test_fast_run_writes_complete_metrics(fast_run: tuple[DemoResult, Path, str]) -> None:
    result, out_dir, printed = fast_run
    metrics = result.metrics
    on_disk = json.loads((out_dir / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for key in ("test_accuracy", "attention_on_key", "rnn_test_accuracy", "train_seconds",
                "attention_on_key_per_head", "accuracy_by_distance",
                "rnn_accuracy_by_distance", "cosine_apple_before", "cosine_apple_after",
                "cosine_role_before", "cosine_role_after", "seed", "steps"):
        assert key in on_disk, key
    for key in ("test_accuracy", "rnn_test_accuracy", "attention_on_key"):
        assert 0.0 <= on_disk[key] <= 1.0
    assert on_disk["train_seconds"] > 0 and on_disk["steps"] == 150
    heads = np.array(on_disk["attention_on_key_per_head"])
    assert heads.shape == (2, 4) and ((heads >= 0) & (heads <= 1)).all()
    assert set(on_disk["accuracy_by_distance"]) == {"13", "25", "37", "49", "61"}
    # The same word at the same position enters the encoder as the same vector.
    assert on_disk["cosine_apple_before"] == pytest.approx(1.0, abs=1e-6)
    assert on_disk["cosine_role_before"] == pytest.approx(1.0, abs=1e-6)
    assert -1.0 <= on_disk["cosine_role_after"] <= 1.0
    # Where the answer depends on which apple is meant, the two apples' vectors part.
    assert on_disk["cosine_apple_sense_before"] == pytest.approx(1.0, abs=1e-6)
    assert on_disk["cosine_apple_sense_after"] < 0.5
    assert on_disk["apple_sense_accuracy"] > 0.95
    assert "its sense decides the answer" in printed
    assert "Held-out accuracy" in printed and "attention" in printed
    assert "steps/s" in printed
    # The pictures of the trained model: its graph, one attention view per layer, the
    # gradient each input word gets, and the residual experiment's two charts.
    pictures = on_disk["pictures"]
    assert sorted(pictures) == sorted([
        "pictures/graph.png", "pictures/attention_encoder_layers_0_self_attn.png",
        "pictures/attention_encoder_layers_1_self_attn.png",
        "pictures/gradient_by_distance.png", "pictures/residuals/gradient_flow.png",
        "pictures/residuals/token_similarity.png"])
    for name in pictures:
        assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "residual" in (out_dir / "pictures" / "graph.dot").read_text()


def test_demo_graph_has_no_edge_through_text(
        fast_run: tuple[DemoResult, Path, str]) -> None:
    from svg_layout import crossings

    svg = (fast_run[1] / "pictures" / "graph.svg").read_text()  # modules at depth 3
    assert "encoder.layers.0.self_attn" in svg or "encoder.layers.0" in svg
    assert crossings(svg) == []


def test_fast_run_loss_falls(fast_run: tuple[DemoResult, Path, str]) -> None:
    metrics = fast_run[0].metrics
    assert metrics["final_train_loss"] < metrics["first_train_loss"] - 0.05
    assert metrics["test_accuracy"] > metrics["chance_accuracy"]


def test_checkpoint_loads_back_with_the_same_predictions(
        fast_run: tuple[DemoResult, Path, str]) -> None:
    result, out_dir, _ = fast_run
    config = result.metrics["config"]
    fresh = AttentionClassifier(task.VOCAB_SIZE, task.NUM_CLASSES, config["d_model"],
                                config["nhead"], config["num_layers"],
                                config["dim_feedforward"])
    fresh.load_state_dict(ta.load(out_dir / "model.npz"))
    tokens = result.test.tokens
    np.testing.assert_array_equal(predict(fresh, tokens), predict(result.model, tokens))
    with ta.no_grad():
        np.testing.assert_array_equal(fresh(tokens[:8]).data, result.model(tokens[:8]).data)
    accuracy = float(np.mean(predict(fresh, tokens) == result.test.labels))
    assert accuracy == result.metrics["test_accuracy"]


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    config = dict(steps=8, rnn_steps=4, batch_size=8, test_size=40, distance_test_size=20,
                  single_distance_slots=(8,), single_distance_steps=2, time_budget=600.0)
    runs = [run(tmp_path / name, seed=5, config=Config(**config), out=io.StringIO(),
                progress=io.StringIO()) for name in ("a", "b")]
    timings = {"train_seconds", "rnn_train_seconds"}
    a, b = ({k: v for k, v in r.metrics.items() if k not in timings} for r in runs)
    assert a == b
