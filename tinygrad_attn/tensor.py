"""Tensor: a numpy array that remembers how it was made, for reverse-mode autograd."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_attn import engine
from tinygrad_attn.engine import Axis, Node
from tinygrad_attn.ops import elementwise as _ew
from tinygrad_attn.ops import linalg as _linalg
from tinygrad_attn.ops import norm as _norm
from tinygrad_attn.ops import reduce as _reduce
from tinygrad_attn.ops import shape as _shape

ArrayLike = Any  # numpy arrays, Python numbers and nested lists, Tensors


_new_tensor = object.__new__


class Tensor(Node):
    """An n-dimensional array with reverse-mode automatic differentiation.

    ``Tensor(np_array)`` keeps the array (and its dtype) without copying; Python numbers
    and lists become float32 (booleans stay boolean). Only floating-point tensors can
    require gradients.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "name", "_backward_seed",
                 "_versions", "__weakref__")
    # Let numpy hand `array * tensor` to Tensor.__rmul__ instead of looping itself.
    __array_ufunc__ = None

    def __init__(self, data: ArrayLike, requires_grad: bool = False,
                 dtype: Any = None, name: str | None = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if isinstance(data, np.ndarray):
            array = data if dtype is None else data.astype(dtype, copy=False)
        else:
            array = np.asarray(data)
            if dtype is not None:
                array = array.astype(dtype, copy=False)
            elif array.dtype.kind in "iuf":
                array = array.astype(np.float32)
            elif array.dtype.kind != "b":
                raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__} "
                                f"data of dtype {array.dtype}")
        self.data: np.ndarray = array
        self.grad: np.ndarray | None = None
        self.requires_grad = False
        self._ctx: engine.Op | None = None
        self.name = name
        self._backward_seed: np.ndarray | None = None
        self._versions = [0]
        if requires_grad:
            self.requires_grad_()

    @staticmethod
    def _wrap(array: np.ndarray) -> Tensor:
        """Wrap an op's output without the constructor's checks (the hot path); always a
        plain Tensor, also when reached through a subclass such as a Parameter."""
        t = _new_tensor(Tensor)
        t.data = array
        t.grad = None
        t.requires_grad = False
        t._ctx = None
        t.name = None
        t._backward_seed = None
        t._versions = [0]
        return t

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad: only floating-point tensors can require "
                            f"gradients, got a {self.data.dtype} tensor of shape "
                            f"{self.data.shape}")
        self.requires_grad = requires_grad
        return self

    # ---- in-place changes ----
    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's data has seen (PyTorch's counter)."""
        return self._versions[0]

    def _bump_version(self) -> None:
        """Record an in-place change of ``data``: every writer into a tensor's array calls
        this, so a backward pass through an op that saved the old values can refuse."""
        self._versions[0] += 1

    # ---- array facts ----
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float | int | bool:
        if self.data.size != 1:
            raise ValueError(f"item: only a one-element tensor has an item, got shape "
                             f"{self.data.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut off from the graph."""
        return Tensor._wrap(self.data)

    def __repr__(self) -> str:
        extras = ""
        if self._ctx is not None:
            extras = f", grad_fn={self._ctx.name}"
        elif self.requires_grad:
            extras = ", requires_grad=True"
        body = np.array2string(self.data, precision=4, separator=", ", prefix="Tensor(")
        return f"Tensor({body}, dtype={self.data.dtype}{extras})"

    __hash__ = object.__hash__  # == is elementwise, so hash by identity

    # ---- autograd ----
    def backward(self, gradient: ArrayLike | None = None,
                 retain_graph: bool | None = None) -> None:
        """Accumulate d self / d leaf into every leaf's ``.grad``.

        A one-element tensor is seeded with 1; any other needs ``gradient`` of its shape.
        The values the graph saved for backward are freed as it runs, unless
        ``retain_graph=True`` (needed to call backward through the graph again or to draw
        its gradients afterwards).
        """
        if not self.requires_grad:
            raise RuntimeError(f"backward: this tensor (shape {self.shape}) does not require "
                               f"grad and was not computed from one that does")
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be implicitly created only for "
                                   f"one-element outputs; this output has shape "
                                   f"{self.shape}: pass backward(gradient) of that shape")
            seed = np.ones(self.data.shape, dtype=self.data.dtype)
        else:
            seed = gradient.data if isinstance(gradient, Tensor) else np.asarray(gradient)
            if seed.shape != self.data.shape:
                raise RuntimeError(f"backward: gradient of shape {seed.shape} does not "
                                   f"match the output shape {self.shape}")
            if seed.dtype.kind != "f":
                raise TypeError(f"backward: gradient must be floating point, got "
                                f"{seed.dtype} for an output of shape {self.shape}")
            seed = seed.astype(self.data.dtype, copy=False)
        self._backward_seed = seed if retain_graph else None
        engine.backward(self, seed, retain_graph=bool(retain_graph))

    # ---- operators ----
    def _const(self, value: ArrayLike) -> Tensor:
        """Wrap a non-tensor operand in this tensor's dtype (2 * x stays float32)."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, float) and self.data.dtype.kind == "f":
            # Python scalars in arithmetic are mostly a few constants used over and over.
            key = (value, self.data.dtype)
            const = _scalar_constants.get(key)
            if const is None:
                if len(_scalar_constants) > 4096:
                    _scalar_constants.clear()
                const = _scalar_constants[key] = Tensor._wrap(np.asarray(value, key[1]))
            return const
        if isinstance(value, np.ndarray):
            return Tensor._wrap(value)
        if self.data.dtype.kind == "f":
            return Tensor._wrap(np.asarray(value, dtype=self.data.dtype))
        return Tensor._wrap(np.asarray(value))

    def __add__(self, other: ArrayLike) -> Tensor:
        return _ew.Add.apply(self, self._const(other))

    def __radd__(self, other: ArrayLike) -> Tensor:
        return _ew.Add.apply(self._const(other), self)

    def __sub__(self, other: ArrayLike) -> Tensor:
        return _ew.Sub.apply(self, self._const(other))

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _ew.Sub.apply(self._const(other), self)

    def __mul__(self, other: ArrayLike) -> Tensor:
        return _ew.Mul.apply(self, self._const(other))

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _ew.Mul.apply(self._const(other), self)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        return _ew.Div.apply(self, self._const(other))

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return _ew.Div.apply(self._const(other), self)

    def __pow__(self, other: ArrayLike) -> Tensor:
        return _ew.Pow.apply(self, self._const(other))

    def __rpow__(self, other: ArrayLike) -> Tensor:
        return _ew.Pow.apply(self._const(other), self)

    def __matmul__(self, other: ArrayLike) -> Tensor:
        return _linalg.MatMul.apply(self, self._const(other))

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _linalg.MatMul.apply(self._const(other), self)

    def __neg__(self) -> Tensor:
        return _ew.Neg.apply(self)

    def _compare(self, other: ArrayLike, ufunc: np.ufunc) -> Tensor:
        other_data = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(ufunc(self.data, other_data))

    def __eq__(self, other: ArrayLike) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other: ArrayLike) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.less)

    def __le__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.less_equal)

    def __gt__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.greater)

    def __ge__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.greater_equal)

    def __getitem__(self, index: Any) -> Tensor:
        return _shape.GetItem.apply(self, index=index)

    # ---- elementwise maths ----
    def exp(self) -> Tensor:
        return _ew.Exp.apply(self)

    def log(self) -> Tensor:
        return _ew.Log.apply(self)

    def sqrt(self) -> Tensor:
        return _ew.Sqrt.apply(self)

    def tanh(self) -> Tensor:
        return _ew.Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        return _ew.Sigmoid.apply(self)

    def relu(self) -> Tensor:
        return _ew.Relu.apply(self)

    def gelu(self, approximate: str = "none") -> Tensor:
        return _ew.gelu(self, approximate)

    def astype(self, dtype: Any) -> Tensor:
        """A differentiable cast between float dtypes (the gradient is cast back)."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":  # integers and booleans carry no gradient
            return Tensor._wrap(self.data.astype(dtype))
        return _ew.Cast.apply(self, dtype=dtype)

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    # ---- reductions ----
    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return _reduce.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return _reduce.mean(self, axis, keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return _reduce.Max.apply(self, axis=axis, keepdims=keepdims)

    def var(self, axis: Axis = None, keepdims: bool = False, correction: int = 1) -> Tensor:
        return _reduce.var(self, axis, keepdims, correction)

    # ---- shape ----
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        return _shape.Reshape.apply(self, shape=shape)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return _shape.Transpose.apply(self, dim0=dim0, dim1=dim1)

    def permute(self, *dims: int | Sequence[int]) -> Tensor:
        if len(dims) == 1 and not isinstance(dims[0], int):
            dims = tuple(dims[0])
        return _shape.Permute.apply(self, dims=dims)

    @property
    def T(self) -> Tensor:
        """All dimensions reversed (numpy's ``.T``; the matrix transpose for 2-D)."""
        return _shape.Permute.apply(self, dims=tuple(range(self.ndim - 1, -1, -1)))

    def masked_fill(self, mask: ArrayLike, value: float) -> Tensor:
        return _shape.MaskedFill.apply(self, mask=_as_array(mask), value=value)

    # ---- fused ----
    def softmax(self, axis: int = -1) -> Tensor:
        return _norm.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        return _norm.LogSoftmax.apply(self, axis=axis)


_scalar_constants: dict[tuple[float, np.dtype], Tensor] = {}


def _as_array(value: ArrayLike) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else np.asarray(value)


