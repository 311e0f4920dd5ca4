"""Differentiable operations, one place each (forward and backward side by side), and
the functional API built on them."""

from __future__ import annotations

from tinygrad_attn.ops import elementwise, linalg, nn, reduce, shape
from tinygrad_attn.ops.elementwise import gelu, residual
from tinygrad_attn.ops.linalg import linear
from tinygrad_attn.ops.nn import (
    cross_entropy,
    dropout,
    layer_norm,
    log_softmax,
    scaled_dot_product_attention,
    self_attention,
    softmax,
)
from tinygrad_attn.ops.shape import concat, stack
from tinygrad_attn.tensor import Tensor


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with numpy's broadcasting and 1-D rules.

    Shape: a (..., n, k), b (..., k, m) -> (..., n, m).
    """
    return a @ b


def add(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise sum with numpy broadcasting."""
    return a + b


__all__ = [
    "add", "concat", "cross_entropy", "dropout", "elementwise", "gelu", "layer_norm",
    "linalg", "linear", "log_softmax", "matmul", "nn", "reduce", "residual",
    "scaled_dot_product_attention", "self_attention",
    "shape", "softmax", "stack",
]
