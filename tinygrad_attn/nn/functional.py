"""PyTorch's ``torch.nn.functional`` names, signatures and semantics
(``import tinygrad_attn.nn.functional as F``). The same functions are reachable as
``tinygrad_attn.ops``, where each is defined next to its op."""

from __future__ import annotations

from tinygrad_attn.ops import (
    cross_entropy,
    dropout,
    embedding,
    gelu,
    layer_norm,
    linear,
    log_softmax,
    mse_loss,
    nll_loss,
    one_hot,
    relu,
    scaled_dot_product_attention,
    sigmoid,
    silu,
    softmax,
    tanh,
)

__all__ = [
    "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear", "log_softmax",
    "mse_loss", "nll_loss", "one_hot", "relu", "scaled_dot_product_attention", "sigmoid",
    "silu", "softmax", "tanh",
]
