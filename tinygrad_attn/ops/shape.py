"""Ops that move values around without arithmetic: reshape, transpose, permute,
indexing, concat/stack and masked_fill."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tinygrad_attn.engine import Node, Op

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]


class Reshape(Op):
    name = "reshape"
    saves_inputs = False
    is_view = True

    def forward(self, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g: np.ndarray) -> Grads:
        return (g.reshape(self.in_shape),)


class Transpose(Op):
    name = "transpose"
    saves_inputs = False
    is_view = True

    def forward(self, x: np.ndarray, dim0: int, dim1: int) -> np.ndarray:
        self.dims = dim0, dim1
        return np.swapaxes(x, dim0, dim1)

    def backward(self, g: np.ndarray) -> Grads:
        return (np.swapaxes(g, *self.dims),)


class Permute(Op):
    name = "permute"
    saves_inputs = False
    is_view = True

    def forward(self, x: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
        if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
            raise ValueError(f"permute: dims {dims} are not a permutation of the "
                             f"{x.ndim} dims of shape {x.shape}")
        self.dims = dims
        return np.transpose(x, dims)

    def backward(self, g: np.ndarray) -> Grads:
        return (np.transpose(g, np.argsort([d % g.ndim for d in self.dims])),)


class Expand(Op):
    """A broadcast view to a larger shape (the engine sums the gradient back)."""

    name = "expand"
    saves_inputs = False
    is_view = True

    def forward(self, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(x, shape)

    def backward(self, g: np.ndarray) -> Grads:
        return (g,)


class Repeat(Op):
    """``x`` tiled ``repeats`` times along each dim (PyTorch's ``repeat``)."""

    name = "repeat"
    saves_inputs = False

    def forward(self, x: np.ndarray, repeats: tuple[int, ...]) -> np.ndarray:
        if len(repeats) < x.ndim:
            raise ValueError(f"repeat: {len(repeats)} repeat counts for a tensor of shape "
                             f"{x.shape}; give at least one per dim")
        self.in_shape = (1,) * (len(repeats) - x.ndim) + x.shape
        self.repeats = repeats
        return np.tile(x, repeats)

    def backward(self, g: np.ndarray) -> Grads:
        # Split every dim into (repeat, size) and sum the copies.
        split = [n for pair in zip(self.repeats, self.in_shape) for n in pair]
        summed = g.reshape(split).sum(axis=tuple(range(0, len(split), 2)))
        return (summed,)  # the engine drops the leading 1s added for extra repeats


def _is_basic(index: Any) -> bool:
    """Basic indexing (ints, slices, None, ...) never repeats an element."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice))
               for p in parts)


def _unwrap_index(index: Any) -> Any:
    if isinstance(index, Node):
        return index.data
    if isinstance(index, tuple):
        return tuple(p.data if isinstance(p, Node) else p for p in index)
    return index


class GetItem(Op):
    """``x[index]``: basic and integer-array indexing; repeated indices accumulate."""

    name = "getitem"
    saves_inputs = False
    is_view = True  # basic indexing gives a view (the engine checks the memory)

    def forward(self, x: np.ndarray, index: Any) -> np.ndarray:
        self.index = _unwrap_index(index)
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, g: np.ndarray) -> Grads:
        grad = np.zeros(self.in_shape, dtype=self.dtype)
        if _is_basic(self.index):
            grad[self.index] = g
        else:
            np.add.at(grad, self.index, g)  # unbuffered: a repeated index adds up
        return (grad,)


class Concat(Op):
    name = "concat"
    saves_inputs = False

    def forward(self, *arrays: np.ndarray, axis: int = 0) -> np.ndarray:
        out = np.concatenate(arrays, axis=axis)
        self.axis = axis
        self.split_at = np.cumsum([a.shape[axis] for a in arrays[:-1]])
        return out

    def backward(self, g: np.ndarray) -> Grads:
        return tuple(np.split(g, self.split_at, axis=self.axis))


class Stack(Op):
    name = "stack"
    saves_inputs = False

    def forward(self, *arrays: np.ndarray, axis: int = 0) -> np.ndarray:
        out = np.stack(arrays, axis=axis)
        self.axis = axis
        return out

    def backward(self, g: np.ndarray) -> Grads:
        return tuple(np.moveaxis(g, self.axis, 0))


class MaskedFill(Op):
    """``value`` where ``mask`` is True, ``x`` elsewhere (mask broadcasts against x)."""

    name = "masked_fill"
    saves_inputs = False

    def forward(self, x: np.ndarray, mask: np.ndarray, value: float) -> np.ndarray:
        if mask.dtype != np.bool_:
            raise TypeError(f"masked_fill: mask must be boolean, got {mask.dtype}")
        try:
            np.broadcast_shapes(mask.shape, x.shape)
        except ValueError:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast "
                             f"to the input of shape {x.shape}") from None
        self.mask = mask
        return np.where(mask, value, x)

    def backward(self, g: np.ndarray) -> Grads:
        return (np.where(self.mask, 0, g),)


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if not tensors:
        raise ValueError("concat: needs at least one tensor")
    return Concat.apply(*_as_tensors("concat", tensors), axis=axis)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    return Stack.apply(*_as_tensors("stack", tensors), axis=axis)


def _as_tensors(name: str, values: Sequence[Any]) -> list[Tensor]:
    tensors = list(values)
    for position, t in enumerate(tensors):
        if not isinstance(t, Node):
            raise TypeError(f"{name}: expected a sequence of tensors, got "
                            f"{type(t).__name__} at position {position}")
    return tensors
