"""How much of a sequence survives each layer: token similarity, with and without
residual connections."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_attn import Tensor, nn, viz
from tinygrad_attn.demo.residuals import residual_story


class _Stack(nn.Module):
    """Layers that return fixed vectors, to check the similarity measure itself."""

    def __init__(self, *outputs: np.ndarray) -> None:
        super().__init__()
        self.layers = [lambda x, out=out: Tensor(out) for out in outputs]


def test_similarity_is_one_for_identical_tokens_and_zero_for_orthogonal_ones() -> None:
    same = np.tile(np.array([1.0, 2.0, 3.0]), (2, 4, 1))  # (batch 2, 4 positions, 3)
    orthogonal = np.broadcast_to(np.eye(3), (2, 3, 3))
    scores = viz.token_similarity(_Stack(same, orthogonal), Tensor(np.zeros((2, 4, 3))))
    assert scores == pytest.approx([1.0, 0.0], abs=1e-12)


def test_without_residuals_every_position_ends_up_with_the_same_vector(tmp_path) -> None:
    result = residual_story(tmp_path, layers=4, graphs=())
    similarity = result["similarity"]
    assert set(similarity) == {"post-norm", "pre-norm", "no residual"}
    # With residuals the first layer keeps the tokens apart ...
    assert similarity["post-norm"][0] < 0.3 and similarity["pre-norm"][0] < 0.3
    # ... without them, two layers make them indistinguishable.
    assert similarity["no residual"][1] > 0.99
    assert all(similarity["no residual"][i] > similarity["post-norm"][i] for i in range(4))
    assert (tmp_path / "token_similarity.png").read_bytes()[:4] == b"\x89PNG"
