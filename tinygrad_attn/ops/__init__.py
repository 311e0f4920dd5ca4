"""Differentiable operations, one place each (forward and backward side by side), and
the functional API built on them: the names of ``tinygrad_attn.nn.functional``."""

from __future__ import annotations

from tinygrad_attn.ops import (
    activation,
    attention,
    elementwise,
    linalg,
    lookup,
    loss,
    norm,
    reduce,
    shape,
)
from tinygrad_attn.ops.activation import gelu, relu, sigmoid, silu, tanh
from tinygrad_attn.ops.attention import (
    masked_attention,
    scaled_dot_product_attention,
    self_attention,
)
from tinygrad_attn.ops.elementwise import add, residual
from tinygrad_attn.ops.linalg import linear, matmul
from tinygrad_attn.ops.lookup import embedding, one_hot
from tinygrad_attn.ops.loss import cross_entropy, mse_loss, nll_loss
from tinygrad_attn.ops.norm import dropout, layer_norm, log_softmax, softmax
from tinygrad_attn.ops.shape import concat, stack

__all__ = [
    # the functional API (tinygrad_attn.nn.functional)
    "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear", "log_softmax",
    "mse_loss", "nll_loss", "one_hot", "relu", "scaled_dot_product_attention", "sigmoid",
    "silu", "softmax", "tanh",
    # more ops
    "add", "concat", "masked_attention", "matmul", "residual", "self_attention", "stack",
    # the op modules
    "activation", "attention", "elementwise", "linalg", "lookup", "loss", "norm", "reduce",
    "shape",
]
