"""Row-wise ops with closed-form backward passes: softmax, log_softmax, layer_norm and
dropout.

Each is numerically stable: the maximum is subtracted before ``exp``, so inputs of
magnitude 1e4 give finite outputs and gradients.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from tinygrad_attn import parallel, random
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


def _by_rows(fn: Callable[..., np.ndarray], axis: int, *arrays: np.ndarray) -> np.ndarray:
    """``fn(*arrays)`` for an ``fn`` that works along ``axis``: by parts of the rows on
    every core for large arrays, unless ``axis`` is the rows' own axis."""
    if axis % arrays[0].ndim == 0:
        return fn(*arrays)
    return parallel.map_rows(fn, *arrays)


def _softmax_grad(g: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    # d softmax: y * (g - sum(g * y))
    grad = g - dot_along(g, y, axis)
    grad *= y
    return grad


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    if x.shape[axis] == 0:  # nothing to normalise: an empty result, as PyTorch gives
        return x.copy()
    shifted = x - np.max(x, axis=axis, keepdims=True)
    shifted -= np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return shifted


def _log_softmax_grad(g: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    # d log_softmax: g - softmax * sum(g)
    return g - np.exp(y) * np.sum(g, axis=axis, keepdims=True)


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
        self.out = _by_rows(partial(_softmax, axis=axis), axis, x)
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        return (_by_rows(partial(_softmax_grad, axis=self.axis), self.axis, g, self.out),)


class LogSoftmax(Op):
    name = "log_softmax"
    saves_inputs = False
    saves_output = True

    def forward(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        _check_axis(axis, x.ndim)
        self.axis = axis
        self.out = _by_rows(partial(_log_softmax, axis=axis), axis, x)
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        return (_by_rows(partial(_log_softmax_grad, axis=self.axis), self.axis, g,
                         self.out),)


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
        dtype = np.result_type(rows.dtype, 1.0)
        self.xhat = xhat = np.empty(rows.shape, dtype)
        self.rstd = rstd = np.empty((len(rows), 1), dtype)
        scale = None if weight is None else weight.reshape(-1)
        shift = None if bias is None else bias.reshape(-1)
        out = xhat if scale is None and shift is None else np.empty(
            rows.shape, np.result_type(xhat, scale if scale is not None else shift))

        def normalize(part: slice) -> None:
            r = rows[part]
            centered = r - r.sum(axis=-1, keepdims=True) * inv_width
            var = dot_along(centered, centered, -1) * inv_width
            rstd[part] = 1.0 / np.sqrt(var + eps)
            np.multiply(centered, rstd[part], out=xhat[part])
            if scale is not None:
                np.multiply(xhat[part], scale, out=out[part])
                if shift is not None:
                    out[part] += shift
            elif shift is not None:
                np.add(xhat[part], shift, out=out[part])

        parallel.run(normalize, parallel.split(len(rows), width) or [...])
        self.x_shape, self.normalized_shape = x.shape, normalized_shape
        self.weight, self.has_bias = weight, has_bias
        return out.reshape(x.shape)

    def backward(self, g: np.ndarray) -> Grads:
        xhat, width = self.xhat, self.xhat.shape[-1]
        g_rows = g.reshape(-1, width)
        need_x = self.needs_input_grad[0]
        grads: list[np.ndarray | None] = [None]
        if self.weight is not None:
            grads.append(np.einsum("ij,ij->j", g_rows, xhat).reshape(self.normalized_shape)
                         if self.needs_input_grad[1] else None)
        if self.has_bias:
            grads.append(g_rows.sum(axis=0).reshape(self.normalized_shape)
                         if self.needs_input_grad[-1] else None)
        if need_x:
            scale = None if self.weight is None else self.weight.reshape(-1)
            grads[0] = parallel.map_rows(
                partial(_layer_norm_grad, scale=scale, inv_width=1.0 / width), g_rows, xhat,
                self.rstd).reshape(self.x_shape)
        return tuple(grads)


def _layer_norm_grad(g: np.ndarray, xhat: np.ndarray, rstd: np.ndarray,
                     scale: np.ndarray | None, inv_width: float) -> np.ndarray:
    # dx = rstd * (g_xhat - mean(g_xhat) - xhat * mean(g_xhat * xhat)), g_xhat = g * weight
    g_xhat = g if scale is None else g * scale
    mean_g = g_xhat.sum(axis=-1, keepdims=True) * inv_width
    mean_gx = dot_along(g_xhat, xhat, -1) * inv_width
    grad_x = xhat * mean_gx
    np.subtract(g_xhat, grad_x, out=grad_x)
    grad_x -= mean_g
    grad_x *= rstd
    return grad_x


class Dropout(Op):
    name = "dropout"
    saves_inputs = False

    def forward(self, x: np.ndarray, p: float) -> np.ndarray:
        draws = random.generator().random(x.shape, dtype=np.float32)
        # Scale the survivors by 1/(1-p) so the expected value is unchanged.
        scale = np.asarray(1.0 / (1.0 - p) if p < 1 else 0.0, dtype=x.dtype)
        self.mask = parallel.map_rows(partial(_keep_mask, p=p, scale=scale), draws)
        return parallel.map_rows(np.multiply, x, self.mask)

    def backward(self, g: np.ndarray) -> Grads:
        return (parallel.map_rows(np.multiply, g, self.mask),)


def _keep_mask(draws: np.ndarray, p: float, scale: np.ndarray) -> np.ndarray:
    return (draws >= p) * scale


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
