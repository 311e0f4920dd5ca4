"""Tensor-API expressions written as PyTorch code, for a parity check against PyTorch.

Each expression reads ``torch`` (PyTorch, or this library imported as torch) and the
inputs :func:`inputs` makes: ``x`` (3, 4) float32 requiring grad, ``y`` (3, 4) and ``v``
(4,) float32, ``n`` (2, 3) int64. ``scripts/make_fixtures.py`` evaluates them with
PyTorch and records each result, its dtype and the gradient of sum(result * w) with
respect to ``x`` (``w`` a fixed random weight); ``tests/test_tensor_parity.py`` evaluates
them here and compares.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CASES = [
    # reductions
    "x.sum()", "x.sum(0)", "x.sum(dim=1, keepdim=True)", "x.sum((0, 1))", "x.mean(-1)",
    "x.mean((0, 1))", "torch.mean(x, 1, True)", "x.std(-1, keepdim=True)", "x.std()",
    "x.var(0, unbiased=False)", "x.var(correction=0)", "x.var(1, keepdim=True)",
    "x.max()", "x.max(1)[0]", "x.max(1)[1]", "x.max(dim=0, keepdim=True).values",
    "x.min(0).values", "x.min(0).indices", "x.amax((0, 1))", "x.amin(1)", "x.argmax()",
    "x.argmax(1)", "x.argmin(0, keepdim=True)", "x.norm()", "x.norm(dim=1)",
    "x.norm(p=1, dim=0)", "x.logsumexp(1)", "x.logsumexp(0, keepdim=True)", "x.any()",
    "(x > 0).all(1)", "x.sum(dtype=torch.float64)", "n.sum()", "n.sum(1)", "n.max()",
    "n.argmax(1)", "n.float().mean()",
    # elementwise
    "x.softmax(-1)", "x.log_softmax(0)", "x.exp()", "x.abs()", "x.abs().sqrt()",
    "x.abs().log()", "x.clamp(-0.5, 0.5)", "x.clamp(min=0)", "torch.clamp(x, max=0)",
    "x.relu()", "x.sigmoid()", "x.tanh()", "x.sin()", "x.cos()", "x.pow(3)", "x ** 2",
    "2 ** x", "1 / x", "-x", "x.maximum(y)", "x.minimum(y)", "torch.max(x, y)",
    "x + y", "x * y", "x - y", "x / y", "x + v", "x * v", "x - 1", "3 - x", "x * 0.5",
    "x.add(y, alpha=2)", "x.sub(v, alpha=0.5)", "x.masked_fill(x > 0, 0.0)",
    "x.masked_fill(x > 0, float('-inf')).softmax(-1)", "x.where(x > 0, y)",
    "torch.where(x > 0, x, y)", "torch.where(x > 0, x, 0.0)", "x.tril()", "x.triu(1)",
    # shapes
    "x.view(4, 3)", "x.view(-1)", "x.reshape(2, 6)", "x.t()", "x.T", "x.transpose(0, 1)",
    "x.unsqueeze(1)", "x.unsqueeze(-1)", "x.unsqueeze(0).squeeze(0)", "x.squeeze()",
    "x.flatten()", "x.flatten(0, 1)", "x.expand(2, 3, 4)", "x.repeat(2, 1)",
    "x.repeat(1, 2, 1)", "x.chunk(2, 1)[1]", "x.chunk(3)[2]", "x.split(1, 0)[2]",
    "x.split([1, 3], 1)[1]", "x.unbind(1)[2]", "x.permute(1, 0)",
    "x.transpose(0, 1).contiguous().view(-1)", "x.view(3, 2, 2).transpose(1, 2)",
    "torch.cat([x, y], 1)", "torch.cat([x, y])", "torch.stack([x, y])",
    "torch.stack([x, y], dim=-1)",
    # indexing
    "x[1]", "x[:, 1:3]", "x[[0, 2]]", "x[x > 0]", "x[..., None]", "x[1, 2]",
    "x[torch.tensor([0, 0, 2])]", "x[:, torch.tensor([3, 1])]", "x[-1, ::2]",
    # products
    "x @ v", "x @ y.t()", "torch.matmul(x, v)", "x.t() @ x",
    # dtypes and promotion
    "x.double()", "x.long()", "x.int()", "x.bool()", "n * 0.5", "n / 2", "n.exp()",
    "n + x[:2, :3]", "n // 2", "n % 4", "(n > 2) & (n < 5)", "~(n > 2)", "n.type_as(x)",
    "x.to(torch.float64)", "x * torch.tensor(2.0, dtype=torch.float64)",
    "n + torch.tensor(2.5, dtype=torch.float64)", "torch.tensor([1, 2]) * 1.5",
    # factories
    "torch.tril(torch.ones(3, 3))", "torch.arange(5)", "torch.arange(0, 1, 0.25)",
    "torch.arange(1, 7, 2)", "torch.linspace(0, 1, 5)", "torch.zeros(2, 3)",
    "torch.ones((2,))", "torch.full((2, 2), 7)", "torch.full((2, 2), 7.0)",
    "torch.full((2,), True)", "torch.eye(3)", "torch.eye(2, 3)", "torch.tensor([1, 2])",
    "torch.tensor([1.0, 2])", "torch.tensor(3)", "torch.tensor([[True, False]])",
    "torch.zeros_like(x)", "torch.ones_like(n)", "torch.full_like(x, 2)",
    "x.new_zeros(2)", "x.new_ones((2, 2))", "x.new_full((3,), 4)",
]


def inputs(torch: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    v = rng.standard_normal(4).astype(np.float32)
    n = np.array([[1, 2, 3], [4, 5, 6]])
    return {"torch": torch, "x": torch.tensor(x, requires_grad=True), "y": torch.tensor(y),
            "v": torch.tensor(v), "n": torch.tensor(n)}


def weight(shape: tuple[int, ...]) -> np.ndarray:
    """The fixed cotangent for a result of this shape."""
    return np.random.default_rng(sum(shape) + len(shape)).standard_normal(shape)
