"""PyTorch's top-level functions (``torch.exp(x)``, ``torch.cat([...])``, ...): each is
the tensor method of the same name, or the op behind it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_attn.ops import shape as _shape
from tinygrad_attn.tensor import Tensor


def _tensor(value: Any, where: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return Tensor(value)
    raise TypeError(f"{where}: expected a tensor, got {type(value).__name__}")


def cat(tensors: Sequence[Tensor], dim: int = 0, *, axis: int | None = None) -> Tensor:
    """Join tensors along an existing dim.

    Shape: tensors equal but in ``dim`` -> the sum of their sizes in ``dim``."""
    tensors = list(tensors)
    dim = dim if axis is None else axis
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    dtype = np.result_type(*[t.dtype for t in tensors])
    return _shape.concat([_tensor(t, "cat")._to_dtype(dtype) for t in tensors], axis=dim)


concat = concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0, *, axis: int | None = None) -> Tensor:
    """Join tensors along a new dim.

    Shape: k tensors of one shape S -> S with a new dim of size k at ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    dtype = np.result_type(*[t.dtype for t in tensors])
    return _shape.stack([_tensor(t, "stack")._to_dtype(dtype) for t in tensors],
                        axis=dim if axis is None else axis)


def where(condition: Any, input: Any = None, other: Any = None) -> Any:  # noqa: A002
    """``input`` where ``condition`` holds, else ``other``; with the condition alone, the
    indices where it holds (as ``nonzero(as_tuple=True)``).

    Shape: condition, input and other broadcast together -> their broadcast shape."""
    if input is None and other is None:
        return tuple(Tensor(i) for i in np.nonzero(_tensor(condition, "where").data))
    if not isinstance(input, Tensor):
        if not isinstance(other, Tensor):
            raise TypeError("where: input or other must be a tensor")
        return other._promoted(input, "where")[1].where(condition, other)
    return input.where(condition, other)


def _method(name: str) -> Any:
    def function(input: Tensor, *args: Any, **kwargs: Any) -> Any:  # noqa: A002
        return getattr(_tensor(input, name), name)(*args, **kwargs)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = (f"``input.{name}(...)``: see :meth:`Tensor.{name}`.\n\n"
                        f"Shape: as :meth:`Tensor.{name}`.")
    return function


add, sub, mul, div, matmul, pow = (_method(n) for n in (  # noqa: A001
    "add", "sub", "mul", "div", "matmul", "pow"))
exp, log, sqrt, sin, cos, tanh, sigmoid, relu, abs = (_method(n) for n in (  # noqa: A001
    "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs"))
softmax, log_softmax, logsumexp = (_method(n) for n in ("softmax", "log_softmax",
                                                         "logsumexp"))
sum, mean, var, std, norm = (_method(n) for n in (  # noqa: A001
    "sum", "mean", "var", "std", "norm"))
max, min, amax, amin, argmax, argmin = (_method(n) for n in (  # noqa: A001
    "max", "min", "amax", "amin", "argmax", "argmin"))
maximum, minimum, clamp, clip = (_method(n) for n in ("maximum", "minimum", "clamp", "clip"))
tril, triu, reshape, flatten, squeeze, unsqueeze = (_method(n) for n in (
    "tril", "triu", "reshape", "flatten", "squeeze", "unsqueeze"))
transpose, permute, split, chunk, t, numel = (_method(n) for n in (
    "transpose", "permute", "split", "chunk", "t", "numel"))
masked_fill, any, all, clone, detach = (_method(n) for n in (  # noqa: A001
    "masked_fill", "any", "all", "clone", "detach"))
eq, ne, lt, le, gt, ge = (_method(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))


def allclose(input: Tensor, other: Tensor, rtol: float = 1e-05,  # noqa: A002
             atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """Whether ``|input - other| <= atol + rtol * |other|`` everywhere.

    Shape: input and other broadcast together -> a Python bool."""
    return bool(np.allclose(_tensor(input, "allclose").data, _tensor(other, "allclose").data,
                            rtol=rtol, atol=atol, equal_nan=equal_nan))


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)
