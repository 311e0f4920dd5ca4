"""Differentiable operations, one place each (forward and backward side by side), and
the functional API built on them."""

from __future__ import annotations

from tinygrad_attn.ops import attention, elementwise, linalg, loss, norm, reduce, shape
from tinygrad_attn.ops.attention import scaled_dot_product_attention, self_attention
from tinygrad_attn.ops.elementwise import add, gelu, residual
from tinygrad_attn.ops.linalg import linear, matmul
from tinygrad_attn.ops.loss import cross_entropy
from tinygrad_attn.ops.norm import dropout, layer_norm, log_softmax, softmax
from tinygrad_attn.ops.shape import concat, stack

__all__ = [
    "add", "attention", "concat", "cross_entropy", "dropout", "elementwise", "gelu", "layer_norm",
    "linalg", "linear", "log_softmax", "loss", "matmul", "norm", "reduce", "residual",
    "scaled_dot_product_attention", "self_attention", "shape", "softmax", "stack",
]
