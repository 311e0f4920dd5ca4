"""Numerical quality: exact GELU, stability at large magnitudes, fused == composed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_attn.ops as F
from tinygrad_attn import Tensor


def test_gelu_exact_matches_erf_to_float64_roundoff() -> None:
    x = np.linspace(-8, 8, 2001)
    reference = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(Tensor(x).gelu().data, reference, rtol=1e-14, atol=1e-15)


def test_gelu_tanh_approximation() -> None:
    x = np.linspace(-5, 5, 101)
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
    np.testing.assert_allclose(Tensor(x).gelu("tanh").data, 0.5 * x * (1 + np.tanh(inner)),
                               rtol=1e-14)
    # the approximation is close to, but not, the exact form
    assert 0 < np.max(np.abs(Tensor(x).gelu("tanh").data - Tensor(x).gelu().data)) < 1e-3


def _all_finite(*tensors: Tensor) -> bool:
    return all(np.all(np.isfinite(t.data)) and (t.grad is None or np.all(np.isfinite(t.grad)))
               for t in tensors)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_ops_are_stable_at_1e4(dtype) -> None:
    rng = np.random.default_rng(0)
    big = lambda *s: Tensor((rng.standard_normal(s) * 1e4).astype(dtype), requires_grad=True)
    x = big(4, 8)
    for out in (F.softmax(x, -1), F.log_softmax(x, -1), F.layer_norm(x, 8),
                F.cross_entropy(x, np.array([0, 1, 2, 3]))):
        out.backward(np.ones(out.shape, dtype=dtype))
        assert _all_finite(out, x)
    q, k, v = big(2, 5, 4), big(2, 5, 4), big(2, 5, 4)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    out.sum().backward()
    assert _all_finite(out, q, k, v)


def test_softmax_equals_its_composed_form() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 5))
    x1, x2 = Tensor(a, requires_grad=True), Tensor(a, requires_grad=True)
    fused = F.softmax(x1, dim=0)
    e = (x2 - x2.amax(dim=0, keepdim=True)).exp()
    composed = e / e.sum(axis=0, keepdims=True)
    _same_values_and_grads(fused, composed, x1, x2, rng)


def test_log_softmax_equals_its_composed_form() -> None:
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 6))
    x1, x2 = Tensor(a, requires_grad=True), Tensor(a, requires_grad=True)
    composed = x2 - x2.exp().sum(axis=-1, keepdims=True).log()
    _same_values_and_grads(F.log_softmax(x1, -1), composed, x1, x2, rng)


def test_layer_norm_equals_its_composed_form() -> None:
    rng = np.random.default_rng(3)
    a, w, b = rng.standard_normal((2, 3, 6)), rng.standard_normal(6), rng.standard_normal(6)
    x1, w1, b1 = (Tensor(v, requires_grad=True) for v in (a, w, b))
    x2, w2, b2 = (Tensor(v, requires_grad=True) for v in (a, w, b))
    fused = F.layer_norm(x1, 6, w1, b1, eps=1e-5)
    mean = x2.mean(axis=-1, keepdims=True)
    var = x2.var(axis=-1, keepdims=True, correction=0)
    composed = (x2 - mean) / (var + 1e-5).sqrt() * w2 + b2
    _same_values_and_grads(fused, composed, x1, x2, rng)
    np.testing.assert_allclose(w1.grad, w2.grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b1.grad, b2.grad, rtol=1e-12, atol=1e-12)


def test_cross_entropy_equals_its_composed_form() -> None:
    rng = np.random.default_rng(4)
    a = rng.standard_normal((5, 4))
    target = np.array([1, 3, -1, 0, 3])
    x1, x2 = Tensor(a, requires_grad=True), Tensor(a, requires_grad=True)
    fused = F.cross_entropy(x1, target, ignore_index=-1)
    keep = np.array([0, 1, 3, 4])
    composed = -F.log_softmax(x2, -1)[keep, target[keep]].mean()
    _same_values_and_grads(fused, composed, x1, x2, rng)


def test_cross_entropy_with_everything_ignored_is_nan_like_pytorch() -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    loss = F.cross_entropy(x, np.array([-100, -100]), ignore_index=-100)
    assert np.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.zeros((2, 3)))


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal"])
def test_attention_equals_its_composed_form(mask_kind: str) -> None:
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((2, 2, 4, 3)) for _ in range(3)]
    t1 = [Tensor(a, requires_grad=True) for a in arrays]
    t2 = [Tensor(a, requires_grad=True) for a in arrays]
    bool_mask = np.array([[False, False, True, False]] * 4)
    causal = np.triu(np.ones((4, 4), dtype=bool), k=1)
    float_mask = rng.standard_normal((4, 4))
    # PyTorch's functional convention: a boolean mask is True where attention may happen.
    kwargs = {"none": {}, "bool": {"attn_mask": ~bool_mask},
              "float": {"attn_mask": float_mask}, "causal": {"is_causal": True}}[mask_kind]
    fused = F.scaled_dot_product_attention(*t1, **kwargs)
    q, k, v = t2
    scores = q @ k.transpose(-1, -2) / math.sqrt(3)
    if mask_kind == "bool":
        scores = scores.masked_fill(bool_mask, -np.inf)
    if mask_kind == "causal":
        scores = scores.masked_fill(causal, -np.inf)
    if mask_kind == "float":
        scores = scores + float_mask
    composed = scores.softmax() @ v
    seed = rng.standard_normal(fused.shape)
    fused.backward(seed)
    composed.backward(seed)
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-12, atol=1e-12)
    for a, b in zip(t1, t2):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_attention_row_with_every_key_masked_gets_zero_weights() -> None:
    q = k = v = Tensor(np.ones((1, 2, 3)), requires_grad=True)
    may_attend = np.array([[False, False], [True, False]])
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=may_attend)
    np.testing.assert_array_equal(out.data[0, 0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(out.data[0, 1], [1.0, 1.0, 1.0])
    out.sum().backward()
    assert np.all(np.isfinite(q.grad))


def test_dropout_scales_survivors_and_is_identity_in_eval() -> None:
    from tinygrad_attn import manual_seed
    x = Tensor(np.ones((200, 50)), requires_grad=True)
    manual_seed(0)
    y = F.dropout(x, 0.2)
    kept = y.data != 0
    assert 0.75 < kept.mean() < 0.85
    np.testing.assert_allclose(y.data[kept], 1.25)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, y.data)
    assert F.dropout(x, 0.2, training=False) is x
    manual_seed(0)
    np.testing.assert_array_equal(F.dropout(x, 0.2).data, y.data)
    np.testing.assert_array_equal(F.dropout(x, 1.0).data, 0.0)


def _same_values_and_grads(fused, composed, x1, x2, rng) -> None:
    seed = rng.standard_normal(fused.shape)
    fused.backward(seed)
    composed.backward(seed)
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "causal"])
def test_packed_self_attention_equals_attention_of_its_three_parts(mask_kind: str) -> None:
    rng = np.random.default_rng(6)
    packed = rng.standard_normal((3, 2, 2, 4, 3))
    qkv = Tensor(packed, requires_grad=True)
    q, k, v = (Tensor(packed[i], requires_grad=True) for i in range(3))
    kwargs = {"none": {}, "bool": {"attn_mask": np.array([False, True, False, False])},
              "causal": {"is_causal": True}}[mask_kind]
    fused = F.self_attention(qkv, **kwargs)  # boolean masks: True = may NOT attend
    if mask_kind == "bool":
        kwargs = {"attn_mask": ~kwargs["attn_mask"]}  # True = may attend
    separate = F.scaled_dot_product_attention(q, k, v, **kwargs)
    seed = rng.standard_normal(fused.shape)
    fused.backward(seed)
    separate.backward(seed)
    np.testing.assert_allclose(fused.data, separate.data, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(qkv.grad, np.stack([q.grad, k.grad, v.grad]), rtol=1e-12,
                               atol=1e-14)
