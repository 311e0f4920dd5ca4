"""Basic layers, activations and losses as modules, and a sinusoidal positional
encoding. Each initialises its weights as PyTorch does (``reset_parameters``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_attn import ops
from tinygrad_attn.nn import init
from tinygrad_attn.nn.module import Module, Parameter, check_device
from tinygrad_attn.tensor import Tensor


def _empty(owner: str, shape: Sequence[int], device: Any, dtype: Any) -> Parameter:
    """An uninitialised parameter on the CPU, float32 unless ``dtype`` says otherwise."""
    check_device(owner, device)
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype.kind != "f":
        raise TypeError(f"{owner}: parameters must be floating point, got dtype {dtype}")
    return Parameter(np.zeros(tuple(shape), dtype=dtype))


class Identity(Module):
    """Returns its input unchanged (any arguments to the constructor are ignored, as in
    PyTorch). Shape: any -> same."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:  # noqa: A002 (PyTorch's name)
        return input


class Linear(Module):
    """``y = x W^T + b``.

    Initialised as PyTorch does: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.

    Shape: x (..., in_features) -> (..., out_features); weight (out, in), bias (out,).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty("Linear", (out_features, in_features), device, dtype)
        self.bias = _empty("Linear", (out_features,), device, dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # kaiming_uniform_ with a = sqrt(5) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return ops.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class LayerNorm(Module):
    """Normalise the trailing ``normalized_shape`` dims to zero mean and unit variance,
    then scale by ``weight`` (ones) and shift by ``bias`` (zeros).

    Shape: x (..., *normalized_shape) -> same.
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
            normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        self.weight = _empty("LayerNorm", shape, device, dtype) if elementwise_affine \
            else None
        self.bias = _empty("LayerNorm", shape, device, dtype) if (
            elementwise_affine and bias) else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return ops.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine="
                f"{self.elementwise_affine}, bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table: row ``i`` of ``weight`` is the vector of token ``i`` (N(0, 1)
    init). The row ``padding_idx``, if given, starts at zero and is never trained.

    Shape: integer indices (...) -> (..., embedding_dim); weight (num_embeddings,
    embedding_dim).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 padding_idx: int | None = None, *, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                                 f"num_embeddings {num_embeddings}")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        self.weight = _empty("Embedding", (num_embeddings, embedding_dim), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0
            self.weight._bump_version()

    def forward(self, input: Tensor | np.ndarray) -> Tensor:  # noqa: A002
        return ops.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text if self.padding_idx is None else f"{text}, padding_idx={self.padding_idx}"


class Dropout(Module):
    """Zero each element with probability ``p`` while training (survivors scaled by
    1/(1-p)); the identity in eval mode.

    Shape: any -> same.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability must lie in [0, 1], got {p}")
        if inplace:
            raise ValueError("Dropout: inplace=True is not supported; the result is always "
                             "a new tensor")
        self.p, self.inplace = p, inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return ops.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


# ---- activations ----
class ReLU(Module):
    """max(x, 0). Shape: any -> same."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return ops.relu(input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class GELU(Module):
    """x * Phi(x) (``approximate="tanh"``: the tanh approximation). Shape: any -> same."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return ops.gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    """tanh(x). Shape: any -> same."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return ops.tanh(input)


class Sigmoid(Module):
    """1 / (1 + exp(-x)). Shape: any -> same."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return ops.sigmoid(input)


class SiLU(Module):
    """x * sigmoid(x). Shape: any -> same."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return ops.silu(input, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Softmax(Module):
    """softmax along ``dim``. Shape: any -> same."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return ops.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# ---- losses ----
class MSELoss(Module):
    """Mean squared error (``reduction``: "mean", "sum" or "none").

    Shape: input and target broadcastable -> () or, with "none", the broadcast shape.
    """

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor | np.ndarray) -> Tensor:  # noqa: A002
        return ops.mse_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(Module):
    """Cross-entropy of logits against class indices or probabilities (see
    ``nn.functional.cross_entropy``); ``weight``, when given, is a buffer.

    Shape: input (C,), (N, C) or (N, C, d1, ...); target (), (N,) or (N, d1, ...), or
    probabilities of the input's shape -> () or, with "none", the target's shape.
    """

    def __init__(self, weight: Tensor | None = None, *, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", None if weight is None else Tensor(weight))
        self.ignore_index, self.reduction = ignore_index, reduction
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor | np.ndarray) -> Tensor:  # noqa: A002
        return ops.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                                 reduction=self.reduction,
                                 label_smoothing=self.label_smoothing)


class PositionalEncoding(Module):
    """Adds the sinusoidal position signal of "Attention Is All You Need":
    PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d)).

    The table is a non-persistent buffer ``pe`` (max_len, d_model).

    Shape: x (batch, seq, d_model) -> same; seq <= max_len.
    """

    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        position = np.arange(max_len)[:, None]
        frequency = np.exp(np.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = np.zeros((max_len, d_model))
        table[:, 0::2] = np.sin(position * frequency)
        table[:, 1::2] = np.cos(position * frequency[: d_model // 2])
        self.register_buffer("pe", Tensor(table.astype(np.float32)), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[-2]
        if length > self.pe.shape[0]:
            raise ValueError(f"PositionalEncoding: sequence length {length} exceeds "
                             f"max_len {self.pe.shape[0]} (input shape {x.shape})")
        signal = Tensor._wrap(self.pe.data[:length].astype(x.dtype, copy=False))
        signal.name = f"{self._path}.pe" if self._path else "pe"  # a label for pictures
        return x + signal
