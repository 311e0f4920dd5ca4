"""Tensor factories with PyTorch's signatures: ``tensor``, ``zeros``, ``randn`` and the
rest. Random ones draw from the one generator that ``manual_seed`` seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_attn import dtypes, random
from tinygrad_attn.tensor import Tensor, check_device

Size = Any  # f(2, 3), f((2, 3)) or f([2, 3])


def _finish(array: np.ndarray, requires_grad: bool, device: Any, where: str) -> Tensor:
    check_device(device, where)
    t = Tensor(array)
    if requires_grad:
        t.requires_grad_()
    return t


def _size(size: tuple[Any, ...], where: str) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{where}: sizes must be non-negative ints, got {size}")
    return tuple(int(n) for n in size)


def _dtype(dtype: Any, where: str, default: np.dtype = dtypes.DEFAULT_FLOAT) -> np.dtype:
    return default if dtype is None else dtypes.as_dtype(dtype, where)


def tensor(data: Any, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data``, as ``torch.tensor``: Python ints give
    int64, floats float32, bools bool; a NumPy array (or a tensor) keeps its dtype.

    Shape: that of ``data`` (nested lists give one dim per level)."""
    if isinstance(data, Tensor):
        array = data.data.copy()
    elif isinstance(data, np.ndarray) or hasattr(data, "__array__"):
        array = np.array(data, copy=True)
    else:
        array = np.array(data)
        if array.dtype.kind == "f":
            array = array.astype(dtypes.DEFAULT_FLOAT)
        elif array.dtype.kind in "iu":
            array = array.astype(dtypes.int64)
        elif array.dtype.kind != "b":
            raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} data "
                            f"(numpy saw dtype {array.dtype})")
    if dtype is not None:
        array = array.astype(dtypes.as_dtype(dtype, "tensor"))
    return _finish(array, requires_grad, device, "tensor")


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """Like :func:`tensor`, but shares a NumPy array's memory when no conversion is
    needed. Shape: that of ``data``."""
    if isinstance(data, Tensor) and dtype is None:
        return data
    if isinstance(data, np.ndarray):
        check_device(device, "as_tensor")
        return Tensor(data if dtype is None else data.astype(dtypes.as_dtype(dtype,
                                                                             "as_tensor")))
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory and dtype. Shape: ``array.shape``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def zeros(*size: Size, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Filled with 0 (float32 unless ``dtype``). Shape: ``size``."""
    return _finish(np.zeros(_size(size, "zeros"), _dtype(dtype, "zeros")), requires_grad,
                   device, "zeros")


def ones(*size: Size, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """Filled with 1 (float32 unless ``dtype``). Shape: ``size``."""
    return _finish(np.ones(_size(size, "ones"), _dtype(dtype, "ones")), requires_grad,
                   device, "ones")


def empty(*size: Size, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Uninitialised values (float32 unless ``dtype``). Shape: ``size``."""
    return _finish(np.empty(_size(size, "empty"), _dtype(dtype, "empty")), requires_grad,
                   device, "empty")


def full(size: Sequence[int], fill_value: Any, *, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """Filled with ``fill_value``; the dtype follows it (bool, int64 or float32) unless
    given, as in PyTorch. Shape: ``size``."""
    if dtype is None:
        dtype = dtypes.scalar_dtype(fill_value, dtypes.bool)
    return _finish(np.full(_size((size,), "full"), fill_value, dtypes.as_dtype(dtype, "full")),
                   requires_grad, device, "full")


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: Any = None,
        requires_grad: bool = False) -> Tensor:
    """Ones on the diagonal, zeros elsewhere. Shape: (n, m), m = n by default."""
    return _finish(np.eye(n, m, dtype=_dtype(dtype, "eye")), requires_grad, device, "eye")


def arange(start: float, end: float | None = None, step: float = 1, *, dtype: Any = None,
           device: Any = None, requires_grad: bool = False) -> Tensor:
    """``[start, end)`` by ``step``: int64 when all three are ints, else float32.

    Shape: (ceil((end - start) / step),)."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    all_ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    default = dtypes.int64 if all_ints else dtypes.DEFAULT_FLOAT
    values = np.arange(start, end, step, dtype=np.float64 if not all_ints else np.int64)
    return _finish(values.astype(_dtype(dtype, "arange", default)), requires_grad, device,
                   "arange")


def linspace(start: float, end: float, steps: int, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``, both included.
    Shape: (steps,)."""
    return _finish(np.linspace(start, end, steps).astype(_dtype(dtype, "linspace")),
                   requires_grad, device, "linspace")


def rand(*size: Size, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1). Shape: ``size``."""
    values = random.generator().random(_size(size, "rand"))
    return _finish(values.astype(_dtype(dtype, "rand")), requires_grad, device, "rand")


def randn(*size: Size, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal. Shape: ``size``."""
    values = random.generator().standard_normal(_size(size, "randn"))
    return _finish(values.astype(_dtype(dtype, "randn")), requires_grad, device, "randn")


def randint(low: int, high: int | None = None, size: Sequence[int] = (), *,
            dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """Integers in ``[low, high)`` (``randint(high, size)`` draws from ``[0, high)``).
    Shape: ``size``, int64 unless ``dtype``."""
    if high is None or isinstance(high, (tuple, list)):
        low, high, size = 0, low, (size if high is None else high)
    values = random.generator().integers(low, high, _size((size,), "randint"))
    return _finish(values.astype(_dtype(dtype, "randint", dtypes.int64)), requires_grad,
                   device, "randint")


def randperm(n: int, *, dtype: Any = None, device: Any = None) -> Tensor:
    """A random permutation of ``0 .. n-1`` (int64 unless ``dtype``). Shape: (n,)."""
    values = random.generator().permutation(n)
    return _finish(values.astype(_dtype(dtype, "randperm", dtypes.int64)), False, device,
                   "randperm")


def _like(name: str, make: Any, t: Tensor, dtype: Any, device: Any, requires_grad: bool,
          *args: Any) -> Tensor:
    dtype = t.dtype if dtype is None else dtypes.as_dtype(dtype, name)
    return make(t.shape, *args, dtype=dtype, device=device, requires_grad=requires_grad)


def zeros_like(input: Tensor, *, dtype: Any = None, device: Any = None,  # noqa: A002
               requires_grad: bool = False) -> Tensor:
    """Zeros like ``input`` (its dtype unless ``dtype``). Shape: ``input.shape``."""
    return _like("zeros_like", zeros, input, dtype, device, requires_grad)


def ones_like(input: Tensor, *, dtype: Any = None, device: Any = None,  # noqa: A002
              requires_grad: bool = False) -> Tensor:
    """Ones like ``input`` (its dtype unless ``dtype``). Shape: ``input.shape``."""
    return _like("ones_like", ones, input, dtype, device, requires_grad)


def full_like(input: Tensor, fill_value: Any, *, dtype: Any = None,  # noqa: A002
              device: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` everywhere, ``input``'s dtype unless ``dtype``. Shape:
    ``input.shape``."""
    dtype = input.dtype if dtype is None else dtype
    return full(input.shape, fill_value, dtype=dtype, device=device,
                requires_grad=requires_grad)


def rand_like(input: Tensor, *, dtype: Any = None, device: Any = None,  # noqa: A002
              requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1), ``input``'s dtype unless ``dtype``. Shape:
    ``input.shape``."""
    return _like("rand_like", rand, input, dtype, device, requires_grad)


def randn_like(input: Tensor, *, dtype: Any = None, device: Any = None,  # noqa: A002
               requires_grad: bool = False) -> Tensor:
    """Standard normal, ``input``'s dtype unless ``dtype``. Shape:
    ``input.shape``."""
    return _like("randn_like", randn, input, dtype, device, requires_grad)


__all__ = [
    "arange", "as_tensor", "empty", "eye", "from_numpy", "full", "full_like", "linspace",
    "ones", "ones_like", "rand", "rand_like", "randint", "randn", "randn_like", "randperm",
    "tensor", "zeros", "zeros_like",
]
