"""Reductions: sum and max are ops; mean and var are composed from them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tinygrad_attn.engine import Axis, Op

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]


def normalize_axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, an int or a tuple of ints) as sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    normalized = []
    for a in axes:
        if not isinstance(a, (int, np.integer)):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dims")
        normalized.append(int(a) % max(ndim, 1))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis {axis!r} repeats a dimension")
    return tuple(sorted(normalized))


def _expand_reduced(g: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Put back the reduced axes (as size 1) so ``g`` broadcasts against the input."""
    return g if keepdims else np.expand_dims(g, axes)


class Sum(Op):
    name = "sum"
    saves_inputs = False

    def forward(self, x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        self.axes = normalize_axes(axis, x.ndim)
        self.keepdims, self.in_shape = keepdims, x.shape
        return np.sum(x, axis=self.axes, keepdims=keepdims)

    def backward(self, g: np.ndarray) -> Grads:
        g = _expand_reduced(g, self.axes, self.keepdims)
        return (np.broadcast_to(g, self.in_shape),)


class Max(Op):
    """Maximum over axes; tied maxima share the gradient equally."""

    name = "max"
    saves_output = True

    def forward(self, x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        self.axes = normalize_axes(axis, x.ndim)
        if x.size == 0:
            raise ValueError(f"max of an empty tensor of shape {x.shape}")
        self.x, self.keepdims = x, keepdims
        self.out = np.max(x, axis=self.axes, keepdims=True)
        return self.out if keepdims else np.squeeze(self.out, self.axes)

    def backward(self, g: np.ndarray) -> Grads:
        is_max = self.x == self.out
        ties = np.sum(is_max, axis=self.axes, keepdims=True)
        g = _expand_reduced(g, self.axes, self.keepdims)
        return (is_max * (g / ties).astype(self.x.dtype, copy=False),)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    axes = normalize_axes(axis, x.ndim)
    count = math.prod(x.shape[a] for a in axes)
    return x.sum(axis=axes, keepdims=keepdims) * (1.0 / count)


def var(x: Tensor, axis: Axis = None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Variance with PyTorch's ``correction`` (1: the unbiased estimate, 0: the biased)."""
    axes = normalize_axes(axis, x.ndim)
    count = math.prod(x.shape[a] for a in axes)
    centered = x - x.mean(axis=axes, keepdims=True)
    # With no degrees of freedom left the variance is undefined: 0 * inf gives NaN, as
    # PyTorch's division by zero does.
    scale = 1.0 / (count - correction) if count > correction else math.inf
    return (centered * centered).sum(axis=axes, keepdims=keepdims) * scale
