"""Finite-difference gradient checks (float64) of whole layers, with every mask kind.

The module's own parameters are passed to ``ta.gradcheck`` as inputs: gradcheck perturbs
float64 tensors in place, so the module sees each perturbation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import Tensor, nn

B, T, S, E, H, FF = 2, 3, 4, 4, 2, 6


def _masks(length: int, source: int) -> dict[str, dict[str, np.ndarray]]:
    padding = np.zeros((B, source), dtype=bool)
    padding[0, -1] = True  # no query loses all of its keys
    float_mask = np.random.default_rng(7).standard_normal((length, source))
    float_mask[0, 1] = -np.inf
    return {
        "none": {},
        "key_padding": {"key_padding_mask": padding},
        "bool_attn_mask": {"attn_mask": np.triu(np.ones((length, source), bool), k=1)},
        "float_attn_mask": {"attn_mask": float_mask},
        "padding_and_float": {"key_padding_mask": padding, "attn_mask": float_mask},
    }


def _perturbed(module: nn.Module, seed: int) -> nn.Module:
    """float64, with generic values everywhere (no zero biases, no unit norms)."""
    module.double()
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data += 0.3 * rng.standard_normal(p.shape)
    return module


def _randn(seed: int, *shape: int) -> Tensor:
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


MHA_CASES = [(mask, nw) for mask in list(_masks(T, T)) + ["causal"] for nw in (True, False)]


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "seq_first"])
@pytest.mark.parametrize("mask,need_weights", MHA_CASES)
def test_multihead_self_attention(mask: str, need_weights: bool, batch_first: bool) -> None:
    ta.manual_seed(0)
    attn = _perturbed(nn.MultiheadAttention(E, H, batch_first=batch_first), seed=1)
    kwargs: dict[str, Any] = {"is_causal": True} if mask == "causal" else _masks(T, T)[mask]

    def fn(x: Tensor, *params: Tensor) -> tuple[Tensor, Tensor | None]:
        return attn(x, x, x, need_weights=need_weights, average_attn_weights=False,
                    **kwargs)

    x = _randn(2, B, T, E) if batch_first else _randn(2, T, B, E)
    assert ta.gradcheck(fn, [x, *attn.parameters()])


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_unbatched(need_weights: bool) -> None:
    ta.manual_seed(0)
    attn = _perturbed(nn.MultiheadAttention(E, H), seed=12)
    padding = np.array([False, False, True, False])

    def fn(q: Tensor, kv: Tensor, *params: Tensor) -> tuple[Tensor, Tensor | None]:
        return attn(q, kv, kv, key_padding_mask=padding, need_weights=need_weights)

    assert ta.gradcheck(fn, [_randn(13, T, E), _randn(14, S, E), *attn.parameters()])


@pytest.mark.parametrize("mask", list(_masks(T, S)))
def test_multihead_cross_attention(mask: str) -> None:
    ta.manual_seed(0)
    attn = _perturbed(nn.MultiheadAttention(E, H, batch_first=True), seed=3)
    kwargs = _masks(T, S)[mask]

    def fn(q: Tensor, k: Tensor, v: Tensor, *params: Tensor) -> tuple[Tensor, Tensor]:
        return attn(q, k, v, need_weights=True, **kwargs)

    inputs = [_randn(4, B, T, E), _randn(5, B, S, E), _randn(6, B, S, E)]
    assert ta.gradcheck(fn, [*inputs, *attn.parameters()])


LAYER_MASKS = ["none", "key_padding", "bool_attn_mask", "float_attn_mask",
               "padding_and_float", "causal"]


def _layer_kwargs(mask: str) -> dict[str, Any]:
    if mask == "causal":
        return {"is_causal": True}
    names = {"key_padding_mask": "src_key_padding_mask", "attn_mask": "src_mask"}
    return {names[k]: v for k, v in _masks(T, T)[mask].items()}


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
@pytest.mark.parametrize("mask", LAYER_MASKS)
def test_transformer_encoder_layer(mask: str, norm_first: bool) -> None:
    ta.manual_seed(0)
    # gelu is smooth; relu's kink is checked on the post-norm layers with tiny odds of a
    # finite-difference step straddling it.
    activation = "gelu" if norm_first else "relu"
    layer = _perturbed(nn.TransformerEncoderLayer(E, H, FF, dropout=0.0,
                                                  activation=activation,
                                                  batch_first=True,
                                                  norm_first=norm_first), seed=8)
    kwargs = _layer_kwargs(mask)

    def fn(src: Tensor, *params: Tensor) -> Tensor:
        return layer(src, **kwargs)

    assert ta.gradcheck(fn, [_randn(9, B, T, E), *layer.parameters()])


def test_transformer_encoder_with_final_norm() -> None:
    ta.manual_seed(0)
    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, activation="gelu",
                                   batch_first=True), 2, norm=nn.LayerNorm(E))
    _perturbed(encoder, seed=10)
    padding = _masks(T, T)["key_padding"]["key_padding_mask"]

    def fn(src: Tensor, *params: Tensor) -> Tensor:
        return encoder(src, src_key_padding_mask=padding, is_causal=True)

    assert ta.gradcheck(fn, [_randn(11, B, T, E), *encoder.parameters()])


def test_gradcheck_catches_a_missing_parameter_gradient() -> None:
    """The checks above can fail: a weight the graph never sees (it shares the layer's
    array, so perturbing it changes the output) gets analytic gradient 0 and is caught."""
    ta.manual_seed(0)
    attn = _perturbed(nn.MultiheadAttention(E, H, batch_first=True), seed=1)
    weight = Tensor(attn.in_proj_weight.data, requires_grad=True)  # same array, no copy
    assert weight.data is attn.in_proj_weight.data

    def fn(x: Tensor, w: Tensor) -> Tensor:
        return attn(x, x, x, need_weights=False)[0]

    with pytest.raises(ta.GradcheckError, match="MISMATCH"):
        ta.gradcheck(fn, [_randn(2, B, T, E), weight])
