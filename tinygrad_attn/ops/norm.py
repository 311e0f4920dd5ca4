"""Row-wise ops with closed-form backward passes: softmax, log_softmax, layer_norm and
dropout.

Each is numerically stable: the maximum is subtracted before ``exp``, so inputs of
magnitude 1e4 give finite outputs and gradients.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tinygrad_attn import random
from tinygrad_attn.engine import Op

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    if x.shape[axis] == 0:  # nothing to normalise: an empty result, as PyTorch gives
        return x.copy()
    out = x - np.max(x, axis=axis, keepdims=True)
    np.exp(out, out=out)
    out /= np.sum(out, axis=axis, keepdims=True)
    return out


def dot_along(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """sum(a * b, axis, keepdims=True) without materialising a * b (einsum streams it)."""
    if axis in (-1, a.ndim - 1):
        return np.einsum("...i,...i->...", a, b)[..., None]
    return np.sum(a * b, axis=axis, keepdims=True)


def _check_axis(axis: int, ndim: int) -> None:
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"axis {axis} is out of range for a tensor with {ndim} dims")


class Softmax(Op):
    name = "softmax"
    saves_inputs = False
    saves_output = True

    def forward(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        _check_axis(axis, x.ndim)
        self.axis = axis
        self.out = _softmax(x, axis)
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        y = self.out
        # d softmax: y * (g - sum(g * y))
        grad = g - dot_along(g, y, self.axis)
        grad *= y
        return (grad,)


class LogSoftmax(Op):
    name = "log_softmax"
    saves_inputs = False
    saves_output = True

    def forward(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        _check_axis(axis, x.ndim)
        self.axis = axis
        if x.shape[axis] == 0:
            self.out = x.copy()
            return self.out
        shifted = x - np.max(x, axis=axis, keepdims=True)
        shifted -= np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        self.out = shifted
        return shifted

    def backward(self, g: np.ndarray) -> Grads:
        # d log_softmax: g - softmax * sum(g)
        return (g - np.exp(self.out) * np.sum(g, axis=self.axis, keepdims=True),)


class LayerNorm(Op):
    """Normalise over the trailing ``normalized_shape`` dims, then scale and shift."""

    name = "layer_norm"

    def forward(self, x: np.ndarray, *affine: np.ndarray,
                normalized_shape: tuple[int, ...], eps: float,
                has_weight: bool, has_bias: bool) -> np.ndarray:
        n = len(normalized_shape)
        if x.shape[x.ndim - n:] != normalized_shape or n > x.ndim:
            raise ValueError(f"layer_norm: normalized_shape {normalized_shape} does not "
                             f"match the trailing dims of the input of shape {x.shape}")
        weight = affine[0] if has_weight else None
        bias = affine[-1] if has_bias else None
        for label, p in (("weight", weight), ("bias", bias)):
            if p is not None and p.shape != normalized_shape:
                raise ValueError(f"layer_norm: {label} of shape {p.shape} does not match "
                                 f"normalized_shape {normalized_shape}")
        width = math.prod(normalized_shape)
        rows = x.reshape(-1, width)
        inv_width = 1.0 / width  # sum * (1/n): np.mean costs more Python per call
        centered = rows - rows.sum(axis=-1, keepdims=True) * inv_width
        var = dot_along(centered, centered, -1) * inv_width
        self.rstd = 1.0 / np.sqrt(var + eps)
        self.xhat = centered
        self.xhat *= self.rstd
        self.x_shape, self.normalized_shape = x.shape, normalized_shape
        self.weight, self.has_bias = weight, has_bias
        out = self.xhat.reshape(x.shape)
        if weight is not None:
            out = out * weight
            if bias is not None:
                out += bias  # out is ours now: no second array
        elif bias is not None:
            out = out + bias
        return out

    def backward(self, g: np.ndarray) -> Grads:
        xhat, width = self.xhat, self.xhat.shape[-1]
        g_rows = g.reshape(-1, width)
        need_x = self.needs_input_grad[0]
        grads: list[np.ndarray | None] = [None]
        g_xhat = g_rows
        if self.weight is not None:
            grads.append(np.einsum("ij,ij->j", g_rows, xhat).reshape(self.normalized_shape)
                         if self.needs_input_grad[1] else None)
            g_xhat = g_rows * self.weight.reshape(-1)
        if self.has_bias:
            grads.append(g_rows.sum(axis=0).reshape(self.normalized_shape)
                         if self.needs_input_grad[-1] else None)
        if need_x:
            # dx = rstd * (g_xhat - mean(g_xhat) - xhat * mean(g_xhat * xhat))
            inv_width = 1.0 / width
            mean_g = g_xhat.sum(axis=-1, keepdims=True) * inv_width
            mean_gx = dot_along(g_xhat, xhat, -1) * inv_width
            grad_x = xhat * mean_gx
            np.subtract(g_xhat, grad_x, out=grad_x)
            grad_x -= mean_g
            grad_x *= self.rstd
            grads[0] = grad_x.reshape(self.x_shape)
        return tuple(grads)


class Dropout(Op):
    name = "dropout"
    saves_inputs = False

    def forward(self, x: np.ndarray, p: float) -> np.ndarray:
        keep = random.generator().random(x.shape, dtype=np.float32) >= p
        # Scale the survivors by 1/(1-p) so the expected value is unchanged.
        self.mask = keep * np.asarray(1.0 / (1.0 - p) if p < 1 else 0.0, dtype=x.dtype)
        return x * self.mask

    def backward(self, g: np.ndarray) -> Grads:
        return (g * self.mask,)


# ---- the functional API ----
def _softmax_dim(name: str, ndim: int, dim: int | None, axis: int | None) -> int:
    if axis is not None:  # NumPy's name, accepted as an alias
        if dim is not None:
            raise TypeError(f"{name}: pass dim or axis, not both")
        return axis
    if dim is None:
        # PyTorch's legacy rule for a missing dim, with its warning.
        warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change "
                      f"the call to include dim=X as an argument.", stacklevel=3)
        return 0 if ndim in (0, 1, 3) else 1
    return dim


def _cast(x: Tensor, dtype: Any) -> Tensor:
    return x if dtype is None or np.dtype(dtype) == x.dtype else x.astype(dtype)


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,  # noqa: A002
            dtype: Any = None, *, axis: int | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (cast to ``dtype`` first if given).

    Shape: any -> same.
    """
    x = _cast(input, dtype)
    return Softmax.apply(x, axis=_softmax_dim("softmax", x.ndim, dim, axis))


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,  # noqa: A002
                dtype: Any = None, *, axis: int | None = None) -> Tensor:
    """log(softmax(x)) along ``dim``, computed stably.

    Shape: any -> same.
    """
    x = _cast(input, dtype)
    return LogSoftmax.apply(x, axis=_softmax_dim("log_softmax", x.ndim, dim, axis))


def layer_norm(input: Tensor, normalized_shape: int | Sequence[int],  # noqa: A002
               weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` dims.

    Shape: input (..., *normalized_shape); weight and bias normalized_shape; out as input.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
        normalized_shape)
    affine = [t for t in (weight, bias) if t is not None]
    return LayerNorm.apply(input, *affine, normalized_shape=shape, eps=eps,
                           has_weight=weight is not None, has_bias=bias is not None)


def dropout(input: Tensor, p: float = 0.5, training: bool = True,  # noqa: A002
            inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (the identity
    when not ``training``).

    Shape: any -> same.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability must lie in [0, 1], got {p}")
    if inplace:
        raise ValueError("dropout: inplace=True is not supported; the result is always a "
                         "new tensor")
    if not training or p == 0.0:
        return input
    return Dropout.apply(input, p=p)
