"""dtypes with PyTorch's names, and PyTorch's type-promotion rules.

Each dtype *is* the NumPy dtype it stands for, so ``t.dtype == ta.float32`` and
``t.dtype == np.float32`` both hold and a dtype can be passed to NumPy unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

float32 = float = np.dtype(np.float32)  # noqa: A001 (PyTorch's names)
float64 = double = np.dtype(np.float64)
float16 = half = np.dtype(np.float16)
int64 = long = np.dtype(np.int64)
int32 = int = np.dtype(np.int32)  # noqa: A001
int16 = short = np.dtype(np.int16)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
bool = np.dtype(np.bool_)  # noqa: A001
# This module's names shadow Python's types; these keep them at hand.
_py_float, _py_int, _py_bool = type(1.0), type(1), type(True)  # noqa: UP003

DEFAULT_FLOAT = float32
# bool < integer < floating point: PyTorch promotes across categories by these ranks.
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def as_dtype(dtype: Any, where: str) -> np.dtype:
    """A dtype from anything PyTorch code passes (ta.float32, np.float32, "float32",
    Python's float/int/bool); a clear TypeError naming ``where`` otherwise."""
    try:
        if dtype is _py_float:
            return DEFAULT_FLOAT
        if dtype is _py_int:
            return int64
        if dtype is _py_bool:
            return bool
        result = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: {dtype!r} is not a dtype") from None
    if result.kind not in _CATEGORY:
        raise TypeError(f"{where}: unsupported dtype {result}")
    return result


def category(dtype: np.dtype) -> int:
    return _CATEGORY[dtype.kind]


def scalar_dtype(value: Any, tensor_dtype: np.dtype) -> np.dtype:
    """The dtype a Python or NumPy scalar takes next to a tensor: the tensor's, unless the
    scalar is of a higher category (an int tensor times 0.5 gives the default float)."""
    kind = 0 if isinstance(value, (_py_bool, np.bool_)) else (
        1 if isinstance(value, (_py_int, np.integer)) else 2)
    if kind <= category(tensor_dtype):
        return tensor_dtype
    return DEFAULT_FLOAT if kind == 2 else int64


def result_type(a: np.ndarray, b: np.ndarray) -> np.dtype:
    """PyTorch's promotion of two tensors: a 0-d tensor widens one with dimensions only if
    it is of a higher category; across categories the higher one's dtype wins (int64 with
    float32 gives float32, not NumPy's float64); within one, the wider."""
    da, db = a.dtype, b.dtype
    if da == db:
        return da
    if (a.ndim == 0) != (b.ndim == 0):
        dimmed, zero_dim = (da, db) if a.ndim else (db, da)
        return dimmed if category(zero_dim) <= category(dimmed) else zero_dim
    ca, cb = category(da), category(db)
    if ca != cb:
        return da if ca > cb else db
    return np.promote_types(da, db)
