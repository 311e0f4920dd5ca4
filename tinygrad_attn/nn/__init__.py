"""Neural-network modules with PyTorch's names, parameter names and semantics;
``nn.functional``, ``nn.init`` and ``nn.utils`` as in PyTorch."""

from __future__ import annotations

from tinygrad_attn.nn import functional, init, utils
from tinygrad_attn.nn.attention import MultiheadAttention
from tinygrad_attn.nn.layers import (
    GELU,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    Identity,
    LayerNorm,
    Linear,
    MSELoss,
    PositionalEncoding,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from tinygrad_attn.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential
from tinygrad_attn.nn.transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "GELU", "CrossEntropyLoss", "Dropout", "Embedding", "Identity", "LayerNorm", "Linear",
    "MSELoss", "Module", "ModuleDict", "ModuleList", "MultiheadAttention", "Parameter",
    "PositionalEncoding", "ReLU", "Sequential", "SiLU", "Sigmoid", "Softmax", "Tanh",
    "TransformerEncoder",
    "TransformerEncoderLayer", "functional", "init", "utils",
]
