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
    if ndim == 0:
        # A 0-d tensor has one "dim" to reduce over, 0 or -1, as in PyTorch.
        for a in (axis,) if not isinstance(axis, (tuple, list)) else axis:
            if a not in (0, -1):
                raise ValueError(f"dim {a} is out of range for a 0-d tensor (expected 0 or "
                                 f"-1)")
        return ()
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
    """Maximum over axes (``amax``, and ``max()`` of a whole tensor); tied maxima share
    the gradient equally, as in PyTorch."""

    name = "max"
    saves_output = True
    reduce = staticmethod(np.max)

    def forward(self, x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        self.axes = normalize_axes(axis, x.ndim)
        if x.size == 0 and (not self.axes or any(x.shape[a] == 0 for a in self.axes)):
            raise ValueError(f"{self.name}: reduction over a zero-size dim of a tensor of "
                             f"shape {x.shape} has no identity")
        self.x, self.keepdims = x, keepdims
        self.out = self.reduce(x, axis=self.axes, keepdims=True)
        return self.out if keepdims else np.squeeze(self.out, self.axes)

    def backward(self, g: np.ndarray) -> Grads:
        is_max = self.x == self.out
        ties = np.sum(is_max, axis=self.axes, keepdims=True)
        g = _expand_reduced(g, self.axes, self.keepdims)
        return (is_max * (g / ties).astype(self.x.dtype, copy=False),)


class Min(Max):
    name = "min"
    reduce = staticmethod(np.min)


class MaxAlong(Op):
    """The values of ``max(dim)``: the gradient goes to the one index that was picked
    (the first of tied maxima), as in PyTorch; the indices are the op's second result."""

    name = "max_dim"
    saves_inputs = False
    pick = staticmethod(np.argmax)

    def forward(self, x: np.ndarray, dim: int, keepdim: bool) -> np.ndarray:
        (axis,) = normalize_axes(dim, x.ndim) or (None,)
        if axis is None:  # a 0-d tensor: its only value, at index 0
            self.indices = np.zeros((), dtype=np.int64)
            self.axis, self.in_shape = None, x.shape
            return x.copy()
        if x.shape[axis] == 0:
            raise ValueError(f"{self.name}: reduction over a zero-size dim {dim} of a tensor "
                             f"of shape {x.shape} has no identity")
        picked = np.expand_dims(self.pick(x, axis=axis), axis)
        self.axis, self.in_shape, self.keepdim = axis, x.shape, keepdim
        self.indices = picked if keepdim else np.squeeze(picked, axis)
        values = np.take_along_axis(x, picked, axis)
        return values if keepdim else np.squeeze(values, axis)

    def backward(self, g: np.ndarray) -> Grads:
        if self.axis is None:
            return (g,)
        grad = np.zeros(self.in_shape, dtype=g.dtype)
        index = self.indices if self.keepdim else np.expand_dims(self.indices, self.axis)
        g = g if self.keepdim else np.expand_dims(g, self.axis)
        np.put_along_axis(grad, index, g, self.axis)
        return (grad,)


class MinAlong(MaxAlong):
    name = "min_dim"
    pick = staticmethod(np.argmin)


class Norm(Op):
    """The 2-norm over axes; its gradient x / norm is 0 where the norm is 0 (PyTorch's
    choice of subgradient)."""

    name = "norm"
    saves_output = True

    def forward(self, x: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        self.axes = normalize_axes(axis, x.ndim)
        self.x, self.keepdims = x, keepdims
        self.out = np.sqrt(np.sum(x * x, axis=self.axes, keepdims=True))
        return self.out if keepdims else np.squeeze(self.out, self.axes)

    def backward(self, g: np.ndarray) -> Grads:
        g = _expand_reduced(g, self.axes, self.keepdims)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(self.out == 0, 0, g / self.out)
        return (self.x * scale,)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    axes = normalize_axes(axis, x.ndim)
    count = math.prod(x.shape[a] for a in axes)
    # An empty reduction has no mean: NaN, as PyTorch gives.
    return x.sum(axis=axes, keepdims=keepdims) * (1.0 / count if count else math.nan)


def var(x: Tensor, axis: Axis = None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Variance with PyTorch's ``correction`` (1: the unbiased estimate, 0: the biased)."""
    axes = normalize_axes(axis, x.ndim)
    count = math.prod(x.shape[a] for a in axes)
    centered = x - x.mean(axis=axes, keepdims=True)
    # With no degrees of freedom left the variance is undefined: 0 * inf gives NaN, as
    # PyTorch's division by zero does.
    scale = 1.0 / (count - correction) if count > correction else math.inf
    return (centered * centered).sum(axis=axes, keepdims=keepdims) * scale
