"""Activation functions in PyTorch's functional form: ``relu``, ``gelu``, ``tanh`` and
``sigmoid`` apply the elementwise ops; ``silu`` is its own op, with a closed-form
backward pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit

from tinygrad_attn.engine import Op
from tinygrad_attn.ops import elementwise as _ew
from tinygrad_attn.ops.elementwise import gelu

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]

__all__ = ["gelu", "relu", "sigmoid", "silu", "tanh"]


class SiLU(Op):
    """x * sigmoid(x) (also called swish)."""

    name = "silu"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x, self.s = x, expit(x)
        return x * self.s

    def backward(self, g: np.ndarray) -> Grads:
        # d x s(x) = s + x s (1 - s) = s (1 + x (1 - s))
        s = self.s
        return (g * s * (1 + self.x * (1 - s)),)


def _no_inplace(name: str, inplace: bool) -> None:
    if inplace:
        raise ValueError(f"{name}: inplace=True is not supported; the result is always a "
                         f"new tensor")


def relu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002 (PyTorch's name)
    """max(x, 0), elementwise. Shape: any -> same."""
    _no_inplace("relu", inplace)
    return _ew.Relu.apply(input)


def tanh(input: Tensor) -> Tensor:  # noqa: A002
    """Hyperbolic tangent, elementwise. Shape: any -> same."""
    return _ew.Tanh.apply(input)


def sigmoid(input: Tensor) -> Tensor:  # noqa: A002
    """1 / (1 + exp(-x)), elementwise. Shape: any -> same."""
    return _ew.Sigmoid.apply(input)


def silu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """x * sigmoid(x), elementwise. Shape: any -> same."""
    _no_inplace("silu", inplace)
    return SiLU.apply(input)
