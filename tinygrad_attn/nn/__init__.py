"""Neural-network modules with PyTorch's names, parameter names and semantics."""

from __future__ import annotations

from tinygrad_attn.nn.attention import MultiheadAttention
from tinygrad_attn.nn.layers import Dropout, Embedding, LayerNorm, Linear, PositionalEncoding
from tinygrad_attn.nn.module import Module, ModuleList, Parameter
from tinygrad_attn.nn.transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "Dropout", "Embedding", "LayerNorm", "Linear", "Module", "ModuleList",
    "MultiheadAttention", "Parameter", "PositionalEncoding", "TransformerEncoder",
    "TransformerEncoderLayer",
]
