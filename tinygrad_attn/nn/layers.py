"""Basic layers: Linear, LayerNorm, Embedding, Dropout, and a sinusoidal positional
encoding. Initialisation follows PyTorch's for each."""

from __future__ import annotations

import math

import numpy as np

from tinygrad_attn import ops, random
from tinygrad_attn.nn.module import Module, Parameter
from tinygrad_attn.tensor import Tensor


def _uniform(bound: float, *shape: int) -> Parameter:
    return Parameter(random.generator().uniform(-bound, bound, shape).astype(np.float32))


class Linear(Module):
    """``y = x W^T + b``.

    Shape: x (..., in_features) -> (..., out_features); weight (out, in), bias (out,).
    Initialised as PyTorch does: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = _uniform(bound, out_features, in_features)
        self.bias = _uniform(bound, out_features) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class LayerNorm(Module):
    """Normalise the trailing ``normalized_shape`` dims to zero mean and unit variance,
    then scale by ``weight`` (ones) and shift by ``bias`` (zeros)."""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
            normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(np.ones(shape, dtype=np.float32)) if elementwise_affine \
            else None
        self.bias = Parameter(np.zeros(shape, dtype=np.float32)) if (
            elementwise_affine and bias) else None

    def forward(self, x: Tensor) -> Tensor:
        return ops.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class Embedding(Module):
    """A lookup table: row ``i`` of ``weight`` is the vector of token ``i`` (N(0, 1) init).

    Shape: integer indices (...) -> (..., embedding_dim).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(random.generator().standard_normal(
            (num_embeddings, embedding_dim)).astype(np.float32))

    def forward(self, indices: Tensor | np.ndarray) -> Tensor:
        data = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
        if data.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got {data.dtype}")
        if data.size and (data.min() < 0 or data.max() >= self.num_embeddings):
            raise ValueError(f"Embedding: indices must lie in [0, {self.num_embeddings}), "
                             f"got values from {data.min()} to {data.max()} in an index "
                             f"array of shape {data.shape}")
        return self.weight[data]

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Dropout(Module):
    """Zero each element with probability ``p`` while training (survivors scaled by
    1/(1-p)); the identity in eval mode."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability must lie in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return ops.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PositionalEncoding(Module):
    """Adds the sinusoidal position signal of "Attention Is All You Need":
    PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).

    Shape: x (batch, seq, d_model) -> same; seq <= max_len.
    """

    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        position = np.arange(max_len)[:, None]
        frequency = np.exp(np.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = np.zeros((max_len, d_model))
        table[:, 0::2] = np.sin(position * frequency)
        table[:, 1::2] = np.cos(position * frequency[: d_model // 2])
        self.register_buffer("pe", table.astype(np.float32))

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[-2]
        if length > self.pe.shape[0]:
            raise ValueError(f"PositionalEncoding: sequence length {length} exceeds "
                             f"max_len {self.pe.shape[0]} (input shape {x.shape})")
        signal = Tensor._wrap(self.pe[:length].astype(x.dtype, copy=False))
        signal.name = f"{self._path}.pe" if self._path else "pe"  # a label for pictures
        return x + signal
