"""Bad input gets a ValueError/TypeError naming the op and the shapes."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_attn as ta
import tinygrad_attn.ops as F
from tinygrad_attn import Tensor

A = Tensor(np.ones((2, 3)), requires_grad=True)


@pytest.mark.parametrize("fn,pattern", [
    (lambda: A + Tensor(np.ones(4)), r"^add: .*\(2, ?3\).*\(4,\)"),
    (lambda: A * np.ones((3, 2)), r"^mul: .*\(2, ?3\).*\(3, ?2\)"),
    (lambda: A - Tensor(np.ones((5, 1, 2))), r"^sub: .*\(2, ?3\)"),
    (lambda: A / np.ones(2), r"^div: .*\(2, ?3\)"),
    (lambda: A @ Tensor(np.ones((2, 3))), r"^matmul: shapes \(2, 3\) and \(2, 3\)"),
    (lambda: A @ Tensor(np.ones(())), r"^matmul: .*\(\)"),
    (lambda: A.sum(axis=2), r"^sum: axis 2 is out of range.*\(2, 3\)"),
    (lambda: A.amax(dim=(0, -3)), r"^max: axis -3 .*\(2, 3\)"),
    (lambda: A.mean(axis=5), r"axis 5 .*out of range"),
    (lambda: A.softmax(axis=2), r"^softmax: axis 2 .*\(2, 3\)"),
    (lambda: A.log_softmax(axis=-3), r"^log_softmax: axis -3 .*\(2, 3\)"),
    (lambda: A.reshape(4, 2), r"^reshape: .*\(2, 3\)"),
    (lambda: A.permute(0, 0), r"^permute: .*\(2, 3\)"),
    (lambda: A.masked_fill(np.ones((3, 3), dtype=bool), 0.0),
     r"^masked_fill: mask of shape \(3, 3\).*\(2, 3\)"),
    (lambda: ta.concat([A, Tensor(np.ones((2, 2)))]), r"^concat: .*\(2, 3\).*\(2, 2\)"),
    (lambda: ta.stack([A, Tensor(np.ones((3, 2)))]), r"^stack: .*\(2, 3\).*\(3, 2\)"),
    (lambda: F.layer_norm(A, 4), r"^layer_norm: normalized_shape \(4,\).*\(2, 3\)"),
    (lambda: F.layer_norm(A, 3, Tensor(np.ones(4))), r"^layer_norm: weight of shape \(4,\)"),
    (lambda: F.cross_entropy(A, np.array([0, 1, 2])),
     r"^cross_entropy: target of shape \(3,\).*\(2, 3\)"),
    (lambda: F.cross_entropy(A, np.array([0, 3])), r"^cross_entropy: target values .*\[0, 3\)"),
    (lambda: F.scaled_dot_product_attention(A, Tensor(np.ones((2, 4))), A),
     r"^scaled_dot_product_attention: q \(2, 3\), k \(2, 4\)"),
    (lambda: F.scaled_dot_product_attention(A, A, A, np.ones((2, 2), dtype=bool),
                                            is_causal=True), "not both"),
    (lambda: F.self_attention(Tensor(np.ones((2, 3, 4)))),
     r"^self_attention: qkv of shape \(2, 3, 4\)"),
    (lambda: F.dropout(A, 1.5), r"^dropout: .*1\.5"),
    (lambda: A.gelu("fast"), "approximate"),
])
def test_value_errors(fn, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        fn()


def test_dim_out_of_range_is_an_index_error_as_in_pytorch() -> None:
    with pytest.raises(IndexError, match=r"transpose: dim 4 .*2 dims"):
        A.transpose(0, 4)


@pytest.mark.parametrize("fn,pattern", [
    (lambda: A.masked_fill(np.ones((2, 3)), 0.0), "^masked_fill: mask must be boolean"),
    (lambda: F.cross_entropy(A, np.array([0.0, 1.0])), "^cross_entropy: target must hold"),
    (lambda: F.scaled_dot_product_attention(A, A, A, np.ones((2, 2), dtype=np.int64)),
     "boolean or float"),
    (lambda: A.sum(dim=1.5), "axis.* must be an int"),
    (lambda: Tensor("text"), "cannot make a tensor"),
    (lambda: ta.manual_seed(None), "seed must be an int"),
])
def test_type_errors(fn, pattern: str) -> None:
    with pytest.raises(TypeError, match=pattern):
        fn()


def test_failed_op_leaves_inputs_untouched() -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError):
        x + Tensor(np.ones(4))
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))
