"""Matrix product with numpy's rules: batched, broadcast batch dims, and 1-D operands."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tinygrad_attn import parallel
from tinygrad_attn.engine import Op

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]


class MatMul(Op):
    """``a @ b``. A 1-D ``a`` acts as a row vector and a 1-D ``b`` as a column vector,
    their extra axis removed from the result, as in numpy."""

    name = "matmul"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dim, got shapes "
                             f"{a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not multiply "
                             f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
        self.a, self.b = a, b
        return _matmul(a, b)

    def backward(self, g: np.ndarray) -> Grads:
        a, b = self.a, self.b
        need_a, need_b = self.needs_input_grad
        # Give vectors their matrix form: a (k,) -> (1, k), b (k,) -> (k, 1), g to match.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        grad_a = grad_b = None
        if need_a:
            grad_a = _matmul_reduced(g, np.swapaxes(b2, -1, -2), a2.shape)
            if a.ndim == 1:
                grad_a = grad_a[..., 0, :]
        if need_b:
            grad_b = _matmul_reduced(np.swapaxes(a2, -1, -2), g, b2.shape)
            if b.ndim == 1:
                grad_b = grad_b[..., 0]
        return grad_a, grad_b


def _rows(x: np.ndarray) -> np.ndarray:
    """``x`` as a 2-D stack of its last-axis rows (also when that axis is empty, where
    ``reshape(-1, 0)`` would be ambiguous)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def _matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x @ y``; a batched ``x`` times a matrix ``y`` runs as one 2-D product (numpy
    loops over the batch otherwise, several times slower)."""
    if y.ndim == 2 and x.ndim >= 2:
        return parallel.matmul(_rows(x), y).reshape(*x.shape[:-1], y.shape[-1])
    return np.matmul(x, y)


def _matmul_reduced(x: np.ndarray, y: np.ndarray, target: tuple[int, ...]) -> np.ndarray:
    """``x @ y``, summed over the batch when the operand this gradient is for was 2-D.

    Then ``x`` and ``y`` share their batch shape, and sum_b x_b @ y_b is one large product
    of the batches stacked along the inner axis: far cheaper than a batch of small
    products followed by a sum.
    """
    if len(target) == 2 and x.ndim > 2:
        x_stacked = _rows(np.swapaxes(x, -1, -2))  # (batch*inner, m)
        return parallel.matmul(x_stacked.T, _rows(y))
    return _matmul(x, y)


class Linear(Op):
    """``x @ weight.T + bias``: the affine map of ``nn.Linear``, one node in the graph.

    Shape: x (..., in), weight (out, in), bias (out,) -> (..., out).
    """

    name = "linear"

    def forward(self, x: np.ndarray, weight: np.ndarray, *bias: np.ndarray) -> np.ndarray:
        if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input of shape {x.shape} does not fit a weight of "
                             f"shape {weight.shape} (expected (..., {weight.shape[-1]}))")
        if bias and bias[0].shape != weight.shape[:1]:
            raise ValueError(f"linear: bias of shape {bias[0].shape} does not fit a weight "
                             f"of shape {weight.shape}")
        # Rows of every batch dim stacked: numpy runs one large BLAS product on 2-D
        # operands, but loops over the batch (several times slower) on 3-D ones.
        self.rows = _rows(x)
        self.x_shape, self.weight = x.shape, weight
        out = parallel.matmul(self.rows, weight.T, bias[0] if bias else None)
        return out.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, g: np.ndarray) -> Grads:
        need_x, need_w = self.needs_input_grad[:2]
        g_rows = _rows(g)
        grad_x = parallel.matmul(g_rows, self.weight).reshape(self.x_shape) if need_x \
            else None
        grad_w = parallel.matmul(g_rows.T, self.rows) if need_w else None
        if len(self.needs_input_grad) == 2:
            return grad_x, grad_w
        return grad_x, grad_w, (g_rows.sum(axis=0) if self.needs_input_grad[2] else None)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias`` (PyTorch's ``F.linear``).

    Shape: x (*, in_features), weight (out_features, in_features), bias (out_features,)
    -> (*, out_features).
    """
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with numpy's broadcasting and 1-D rules.

    Shape: a (..., n, k), b (..., k, m) -> (..., n, m).
    """
    return a @ b
