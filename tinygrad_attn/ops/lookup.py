"""Lookups by integer index: ``embedding`` (differentiable in the table) and
``one_hot``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tinygrad_attn.engine import Node, Op, array_of

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]


def _indices(name: str, indices: Any, rows: int) -> np.ndarray:
    data = array_of(indices)
    if data.dtype.kind not in "iu":
        raise TypeError(f"{name}: indices must be integers, got {data.dtype} of shape "
                        f"{data.shape}")
    if data.size and (data.min() < 0 or data.max() >= rows):
        raise ValueError(f"{name}: indices must lie in [0, {rows}), got values from "
                         f"{data.min()} to {data.max()} in an index array of shape "
                         f"{data.shape}")
    return data


class Embedding(Op):
    """Rows of a table picked by index; the table's gradient is the output's gradient
    summed into the rows that were picked (nothing into ``padding_idx``)."""

    name = "embedding"
    saves_inputs = False  # backward needs the indices only, not the table's values

    def forward(self, weight: np.ndarray, *, indices: np.ndarray,
                padding_idx: int | None) -> np.ndarray:
        if weight.ndim != 2:
            raise ValueError(f"embedding: weight must be 2-D (num_embeddings, "
                             f"embedding_dim), got shape {weight.shape}")
        self.indices, self.padding_idx, self.shape = indices, padding_idx, weight.shape
        return weight[indices]

    def backward(self, g: np.ndarray) -> Grads:
        grad = np.zeros(self.shape, dtype=g.dtype)
        # Repeated indices accumulate: add.at, not fancy assignment.
        np.add.at(grad, self.indices.reshape(-1), g.reshape(-1, self.shape[1]))
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        return (grad,)


def embedding(input: Tensor | np.ndarray, weight: Tensor,  # noqa: A002 (PyTorch's name)
              padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False,
              sparse: bool = False) -> Tensor:
    """Row ``input[...]`` of ``weight`` for every index; the row ``padding_idx`` gets no
    gradient.

    Shape: input (...) integers, weight (num_embeddings, embedding_dim) -> (...,
    embedding_dim).
    """
    unsupported = {"max_norm": max_norm is not None, "scale_grad_by_freq": scale_grad_by_freq,
                   "sparse": sparse}
    for argument, given in unsupported.items():
        if given:
            raise ValueError(f"embedding: {argument} is not supported")
    rows = weight.shape[0]
    if padding_idx is not None:
        if not -rows <= padding_idx < rows:
            raise ValueError(f"embedding: padding_idx {padding_idx} must lie within "
                             f"num_embeddings {rows}")
        padding_idx %= rows
    return Embedding.apply(weight, indices=_indices("embedding", input, rows),
                           padding_idx=padding_idx)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """Integer class indices as int64 one-hot rows.

    Shape: (...) -> (..., num_classes); ``num_classes=-1`` means max(tensor) + 1.
    """
    if not isinstance(tensor, Node):
        raise TypeError(f"one_hot: expected a Tensor of class indices, got "
                        f"{type(tensor).__name__}")
    data = tensor.data
    if data.dtype.kind not in "iu":
        raise TypeError(f"one_hot: class values must be integers, got {data.dtype}")
    if num_classes == -1:
        if data.size == 0:
            raise ValueError("one_hot: cannot infer the number of classes of an empty "
                             "tensor; pass num_classes")
        num_classes = int(data.max()) + 1
    _indices("one_hot", data, num_classes)
    return tensor._wrap(np.eye(num_classes, dtype=np.int64)[data])
