"""Matrix product with numpy's rules: batched, broadcast batch dims, and 1-D operands."""

from __future__ import annotations

import numpy as np

from tinygrad_attn.engine import Op

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
        return np.matmul(a, b)

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


def _matmul_reduced(x: np.ndarray, y: np.ndarray, target: tuple[int, ...]) -> np.ndarray:
    """``x @ y``, summed over the batch when the operand this gradient is for was 2-D.

    Then ``x`` and ``y`` share their batch shape, and sum_b x_b @ y_b is one large product
    of the batches stacked along the inner axis: far cheaper than a batch of small
    products followed by a sum.
    """
    if len(target) == 2 and x.ndim > 2:
        x_stacked = np.swapaxes(x, -1, -2).reshape(-1, x.shape[-2])  # (batch*inner, m)
        return x_stacked.T @ y.reshape(-1, y.shape[-1])
    return np.matmul(x, y)
