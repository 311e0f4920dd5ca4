"""Tensor: a numpy array that remembers how it was made, for reverse-mode autograd."""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from tinygrad_attn import dtypes, engine, random
from tinygrad_attn.engine import Node
from tinygrad_attn.ops import elementwise as _ew
from tinygrad_attn.ops import linalg as _linalg
from tinygrad_attn.ops import norm as _norm
from tinygrad_attn.ops import reduce as _reduce
from tinygrad_attn.ops import shape as _shape

ArrayLike = Any  # numpy arrays, Python numbers and nested lists, Tensors
Dims = int | Sequence[int] | None

_new_tensor = object.__new__
_UNCHANGED = engine.UNCHANGED
_float = float  # the hot path's check, spelled without the Tensor.float method's name
_SCALARS = (int, float, bool, np.number, np.bool_)


class MaxMin(NamedTuple):
    """What ``max(dim)``/``min(dim)`` return, as PyTorch's ``return_types``."""

    values: Tensor
    indices: Tensor


class Tensor(Node):
    """An n-dimensional array with reverse-mode automatic differentiation.

    ``Tensor(np_array)`` keeps the array (and its dtype) without copying, as
    ``from_numpy``; Python numbers and lists become float32, as ``torch.Tensor``
    (booleans stay boolean). Use :func:`tinygrad_attn.tensor` for PyTorch's
    ``torch.tensor`` (it infers int64 for ints and copies). Only floating-point tensors
    can require gradients.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "name", "_versions", "__weakref__")
    # Let numpy hand `array * tensor` to Tensor.__rmul__ instead of looping itself.
    __array_ufunc__ = None

    def __init__(self, data: ArrayLike, requires_grad: bool = False,
                 dtype: Any = None, name: str | None = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if dtype is not None:
            dtype = dtypes.as_dtype(dtype, "Tensor")
        if not isinstance(data, np.ndarray) and hasattr(data, "__array__"):
            data = np.asarray(data)  # another library's tensor: keep its dtype
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
        self._versions = engine.UNCHANGED  # [version, when last changed]: see engine
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
        t._versions = _UNCHANGED
        return t

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise RuntimeError(f"requires_grad: only floating-point tensors can require "
                               f"gradients, got a {self.data.dtype} tensor of shape "
                               f"{self.data.shape}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad_(False): a tensor computed from others keeps "
                               "requiring grad; use detach() to cut it from the graph")
        self.requires_grad = builtins.bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward (leaves keep
        theirs anyway), as PyTorch's ``retain_grad``: handy for seeing what reaches an
        intermediate result."""
        if not self.requires_grad:
            raise RuntimeError(f"retain_grad: this tensor (shape {self.shape}) does not "
                               f"require grad")
        if self._ctx is not None:
            self._ctx.retains_grad = True

    @property
    def retains_grad(self) -> builtins.bool:
        return self._ctx is not None and self._ctx.retains_grad

    # ---- in-place changes ----
    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's data has seen (PyTorch's counter)."""
        return self._versions[0]

    def _bump_version(self) -> None:
        """Record an in-place change of ``data``: every writer into a tensor's array calls
        this, so a backward pass through an op that saved the old values can refuse."""
        engine.mark_modified(self)

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
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def grad_fn(self) -> engine.Op | None:
        return self._ctx

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape, or the length of one dim."""
        if dim is None:
            return self.data.shape
        return self.data.shape[_dim(dim, self.ndim, "size")]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return self.data.size

    def element_size(self) -> int:
        return self.data.itemsize

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def numpy(self) -> np.ndarray:
        return self.data

    def tolist(self) -> Any:
        return self.data.tolist()

    def item(self) -> builtins.float | builtins.int | builtins.bool:
        if self.data.size != 1:
            raise RuntimeError(f"item: a tensor with {self.data.size} elements (shape "
                               f"{self.data.shape}) cannot be converted to a Python scalar")
        return self.data.item()

    # Truth value, numbers and formatting as PyTorch: one element is its value.
    def __bool__(self) -> builtins.bool:
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of a tensor with {self.data.size} elements "
                               f"(shape {self.data.shape}) is ambiguous; use .any() or .all()")
        return builtins.bool(self.data.item())

    def __float__(self) -> builtins.float:
        return builtins.float(self.item())

    def __int__(self) -> builtins.int:
        return builtins.int(self.item())

    def __index__(self) -> builtins.int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError(f"only one-element integer tensors can be used as an index, got "
                            f"a {self.data.dtype} tensor of shape {self.data.shape}")
        return builtins.int(self.data.item())

    def __format__(self, spec: str) -> str:
        if self.data.ndim == 0:
            return format(self.data.item(), spec)
        return format(repr(self), spec)

    def detach(self) -> Tensor:
        """The same data (shared, with its version counter), cut off from the graph."""
        t = Tensor._wrap(self.data)
        t._versions = engine.own_versions(self)
        return t

    def clone(self) -> Tensor:
        """A copy that stays in the graph."""
        return _ew.Clone.apply(self)

    def contiguous(self) -> Tensor:
        return self if self.data.flags.c_contiguous else _ew.Clone.apply(self)

    def is_contiguous(self) -> builtins.bool:
        return builtins.bool(self.data.flags.c_contiguous)

    def __repr__(self) -> str:
        extras = ""
        if self._ctx is not None:
            extras = f", grad_fn={self._ctx.name}"
        elif self.requires_grad:
            extras = ", requires_grad=True"
        body = np.array2string(self.data, precision=4, separator=", ", prefix="tensor(")
        return f"tensor({body}, dtype={self.data.dtype}{extras})"

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
        engine.backward(self, seed, retain_graph=bool(retain_graph))

    # ---- operands: PyTorch's type promotion ----
    def _operand(self, value: ArrayLike, op: str) -> Tensor:
        """``value`` as a tensor for a binary op with this one, before promotion."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, _SCALARS):
            dtype = self.data.dtype
            if type(value) is not _float or dtype.kind != "f":
                dtype = dtypes.scalar_dtype(value, dtype)
            return _scalar_tensor(value, dtype)
        if isinstance(value, np.ndarray):
            return Tensor._wrap(value)
        raise TypeError(f"{op}: unsupported operand of type {type(value).__name__} for a "
                        f"tensor of shape {self.shape}; wrap it with tinygrad_attn.tensor()")

    def _promoted(self, value: ArrayLike, op: str) -> tuple[Tensor, Tensor]:
        """Both operands of a binary op in their common dtype (PyTorch's rules)."""
        dtype = self.data.dtype
        # The hot cases first: a float tensor with a Python float, or two tensors of one
        # dtype (numpy shares one dtype object among arrays of a builtin dtype).
        if type(value) is _float and dtype.kind == "f":
            return self, _scalar_tensor(value, dtype)
        if type(value) is Tensor and value.data.dtype is dtype:
            return self, value
        other = self._operand(value, op)
        a, b = dtype, other.data.dtype
        if a == b:
            return self, other
        dtype = dtypes.result_type(self.data, other.data)
        return self._to_dtype(dtype), other._to_dtype(dtype)

    def _to_dtype(self, dtype: np.dtype) -> Tensor:
        if self.data.dtype == dtype:
            return self
        if self.requires_grad and dtype.kind == "f":
            return _ew.Cast.apply(self, dtype=dtype)  # differentiable float -> float
        return Tensor._wrap(self.data.astype(dtype))

    def _floating(self) -> Tensor:
        """This tensor, or (for integer and boolean ones) a float32 copy: float ops on
        integers give the default float dtype, as in PyTorch."""
        return self if self.data.dtype.kind == "f" else self._to_dtype(dtypes.DEFAULT_FLOAT)

    # ---- arithmetic ----
    def __add__(self, other: ArrayLike) -> Tensor:
        if type(other) is _float and self.data.dtype.kind == "f":  # the hot case, inline
            return _ew.Add.apply(self, _scalar_tensor(other, self.data.dtype))
        return _ew.Add.apply(*self._promoted(other, "add"))

    def __radd__(self, other: ArrayLike) -> Tensor:
        a, b = self._promoted(other, "add")
        return _ew.Add.apply(b, a)

    def __sub__(self, other: ArrayLike) -> Tensor:
        if type(other) is _float and self.data.dtype.kind == "f":  # the hot case, inline
            return _ew.Sub.apply(self, _scalar_tensor(other, self.data.dtype))
        return _ew.Sub.apply(*self._promoted(other, "sub"))

    def __rsub__(self, other: ArrayLike) -> Tensor:
        a, b = self._promoted(other, "sub")
        return _ew.Sub.apply(b, a)

    def __mul__(self, other: ArrayLike) -> Tensor:
        if type(other) is _float and self.data.dtype.kind == "f":  # the hot case, inline
            return _ew.Mul.apply(self, _scalar_tensor(other, self.data.dtype))
        return _ew.Mul.apply(*self._promoted(other, "mul"))

    def __rmul__(self, other: ArrayLike) -> Tensor:
        a, b = self._promoted(other, "mul")
        return _ew.Mul.apply(b, a)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        a, b = self._promoted(other, "div")
        return _ew.Div.apply(a._floating(), b._floating())

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        a, b = self._promoted(other, "div")
        return _ew.Div.apply(b._floating(), a._floating())

    def __pow__(self, other: ArrayLike) -> Tensor:
        return _ew.Pow.apply(*self._promoted(other, "pow"))

    def __rpow__(self, other: ArrayLike) -> Tensor:
        a, b = self._promoted(other, "pow")
        return _ew.Pow.apply(b, a)

    def __matmul__(self, other: ArrayLike) -> Tensor:
        return _linalg.MatMul.apply(self, self._operand(other, "matmul"))

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _linalg.MatMul.apply(self._operand(other, "matmul"), self)

    def __neg__(self) -> Tensor:
        return _ew.Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return self.abs()

    def __floordiv__(self, other: ArrayLike) -> Tensor:
        a, b = self._promoted(other, "floor_divide")
        return Tensor._wrap(np.floor_divide(a.data, b.data))  # no gradient, as PyTorch

    def __mod__(self, other: ArrayLike) -> Tensor:
        a, b = self._promoted(other, "remainder")
        return Tensor._wrap(np.mod(a.data, b.data))

    def add(self, other: ArrayLike, *, alpha: builtins.float = 1) -> Tensor:
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other: ArrayLike, *, alpha: builtins.float = 1) -> Tensor:
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other: ArrayLike) -> Tensor:
        return self * other

    def div(self, other: ArrayLike) -> Tensor:
        return self / other

    def pow(self, exponent: ArrayLike) -> Tensor:
        return self ** exponent

    def matmul(self, other: Tensor) -> Tensor:
        return self @ other

    # ---- comparisons and logic (no gradient) ----
    def _compare(self, other: ArrayLike, ufunc: np.ufunc, op: str) -> Tensor:
        a, b = self._promoted(other, op)
        return Tensor._wrap(ufunc(a.data, b.data))

    def __eq__(self, other: ArrayLike) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal, "eq")

    def __ne__(self, other: ArrayLike) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal, "ne")

    def __lt__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.less, "lt")

    def __le__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.less_equal, "le")

    def __gt__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.greater, "gt")

    def __ge__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.greater_equal, "ge")

    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def _logical(self, other: ArrayLike, ufunc: np.ufunc, op: str) -> Tensor:
        other = self._operand(other, op)
        if self.data.dtype.kind not in "biu" or other.data.dtype.kind not in "biu":
            raise TypeError(f"{op}: needs boolean or integer tensors, got {self.dtype} "
                            f"and {other.dtype}")
        return Tensor._wrap(ufunc(self.data, other.data))

    def __and__(self, other: ArrayLike) -> Tensor:
        return self._logical(other, np.bitwise_and, "bitwise_and")

    def __or__(self, other: ArrayLike) -> Tensor:
        return self._logical(other, np.bitwise_or, "bitwise_or")

    def __xor__(self, other: ArrayLike) -> Tensor:
        return self._logical(other, np.bitwise_xor, "bitwise_xor")

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self) -> Tensor:
        if self.data.dtype.kind not in "biu":
            raise TypeError(f"bitwise_not: needs a boolean or integer tensor, got "
                            f"{self.dtype}")
        return Tensor._wrap(np.invert(self.data))

    def logical_not(self) -> Tensor:
        return Tensor._wrap(np.logical_not(self.data))

    def __getitem__(self, index: Any) -> Tensor:
        return _shape.GetItem.apply(self, index=index)

    # ---- elementwise maths ----
    def exp(self) -> Tensor:
        return _ew.Exp.apply(self._floating())

    def log(self) -> Tensor:
        return _ew.Log.apply(self._floating())

    def sqrt(self) -> Tensor:
        return _ew.Sqrt.apply(self._floating())

    def sin(self) -> Tensor:
        return _ew.Sin.apply(self._floating())

    def cos(self) -> Tensor:
        return _ew.Cos.apply(self._floating())

    def tanh(self) -> Tensor:
        return _ew.Tanh.apply(self._floating())

    def sigmoid(self) -> Tensor:
        return _ew.Sigmoid.apply(self._floating())

    def relu(self) -> Tensor:
        return _ew.Relu.apply(self)

    def gelu(self, approximate: str = "none") -> Tensor:
        return _ew.gelu(self, approximate)

    def abs(self) -> Tensor:
        return _ew.Abs.apply(self)

    def clamp(self, min: builtins.float | None = None,  # noqa: A002 (PyTorch's names)
              max: builtins.float | None = None) -> Tensor:  # noqa: A002
        if min is None and max is None:
            raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
        return _ew.Clamp.apply(self, min=_number(min), max=_number(max))

    clip = clamp

    def maximum(self, other: Tensor) -> Tensor:
        return _ew.Maximum.apply(*self._promoted(other, "maximum"))

    def minimum(self, other: Tensor) -> Tensor:
        return _ew.Minimum.apply(*self._promoted(other, "minimum"))

    def where(self, condition: ArrayLike, other: ArrayLike) -> Tensor:
        """``self`` where ``condition`` holds, else ``other`` (PyTorch's ``x.where``)."""
        a, b = self._promoted(other, "where")
        return _ew.Where.apply(a, b, condition=engine.array_of(condition))

    def masked_fill(self, mask: ArrayLike, value: ArrayLike) -> Tensor:
        return _shape.MaskedFill.apply(self, mask=engine.array_of(mask),
                                       value=_number(value))

    # ---- new tensors like this one (PyTorch's new_* methods: this tensor's dtype) ----
    def new_tensor(self, data: ArrayLike, dtype: Any = None) -> Tensor:
        array = np.array(engine.array_of(data), dtype=dtype or self.data.dtype)
        return Tensor._wrap(array)

    def new_zeros(self, *size: Any, dtype: Any = None) -> Tensor:
        return Tensor._wrap(np.zeros(_sizes(size), dtype=dtype or self.data.dtype))

    def new_ones(self, *size: Any, dtype: Any = None) -> Tensor:
        return Tensor._wrap(np.ones(_sizes(size), dtype=dtype or self.data.dtype))

    def new_full(self, size: Sequence[builtins.int], fill_value: Any, dtype: Any = None
                 ) -> Tensor:
        return Tensor._wrap(np.full(_sizes((size,)), fill_value, dtype=dtype or self.dtype))

    def new_empty(self, *size: Any, dtype: Any = None) -> Tensor:
        return Tensor._wrap(np.empty(_sizes(size), dtype=dtype or self.data.dtype))

    # ---- dtype ----
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """``to(dtype)``, ``to(other)`` (its dtype), ``to("cpu")``, ``to(device, dtype)``."""
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        kwargs.pop("copy", None)
        if kwargs:
            raise TypeError(f"to: unexpected arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, str) and arg not in _DTYPE_NAMES:
                device = arg
            else:
                dtype = arg
        check_device(device, "to")
        if dtype is None:
            return self
        return self._to_dtype(dtypes.as_dtype(dtype, "to"))

    def type_as(self, other: Tensor) -> Tensor:
        return self._to_dtype(other.dtype)

    def float(self) -> Tensor:
        return self._to_dtype(dtypes.float32)

    def double(self) -> Tensor:
        return self._to_dtype(dtypes.float64)

    def half(self) -> Tensor:
        return self._to_dtype(dtypes.float16)

    def long(self) -> Tensor:
        return self._to_dtype(dtypes.int64)

    def int(self) -> Tensor:
        return self._to_dtype(dtypes.int32)

    def bool(self) -> Tensor:
        return self._to_dtype(dtypes.bool)

    def cpu(self) -> Tensor:
        return self

    def astype(self, dtype: Any) -> Tensor:
        """NumPy's spelling of :meth:`to` with a dtype."""
        return self._to_dtype(dtypes.as_dtype(dtype, "astype"))

    # ---- reductions ----
    def sum(self, dim: Dims = None, keepdim: builtins.bool = False, *, dtype: Any = None,
            axis: Dims = None, keepdims: builtins.bool | None = None) -> Tensor:
        dim, keepdim = _alias(dim, axis, keepdim, keepdims)
        x = self if dtype is None else self._to_dtype(dtypes.as_dtype(dtype, "sum"))
        if x.data.dtype.kind in "bu" or x.data.dtype == dtypes.int32:
            x = x._to_dtype(dtypes.int64)  # integer sums are int64, as in PyTorch
        return _reduce.Sum.apply(x, axis=_dims(dim), keepdims=keepdim)

    def mean(self, dim: Dims = None, keepdim: builtins.bool = False, *, dtype: Any = None,
             axis: Dims = None, keepdims: builtins.bool | None = None) -> Tensor:
        dim, keepdim = _alias(dim, axis, keepdim, keepdims)
        x = self if dtype is None else self._to_dtype(dtypes.as_dtype(dtype, "mean"))
        if x.data.dtype.kind != "f":
            raise RuntimeError(f"mean: could not infer the output dtype: the input must be "
                               f"floating point, got {x.dtype} (pass dtype=)")
        return _reduce.mean(x, _dims(dim), keepdim)

    def var(self, dim: Dims = None, unbiased: builtins.bool | None = None,
            keepdim: builtins.bool = False, *, correction: builtins.int | None = None,
            axis: Dims = None, keepdims: builtins.bool | None = None) -> Tensor:
        dim, keepdim = _alias(dim, axis, keepdim, keepdims)
        return _reduce.var(self._floating(), _dims(dim), keepdim,
                           _correction(unbiased, correction))

    def std(self, dim: Dims = None, unbiased: builtins.bool | None = None,
            keepdim: builtins.bool = False, *, correction: builtins.int | None = None,
            axis: Dims = None, keepdims: builtins.bool | None = None) -> Tensor:
        dim, keepdim = _alias(dim, axis, keepdim, keepdims)
        return self.var(dim, keepdim=keepdim, correction=_correction(unbiased, correction)
                        ).sqrt()

    def _extreme(self, dim: Any, keepdim: builtins.bool, largest: builtins.bool,
                 name: str) -> Tensor | MaxMin:
        if isinstance(dim, Tensor):  # max(other): the elementwise maximum
            return self.maximum(dim) if largest else self.minimum(dim)
        if dim is None:
            op = _reduce.Max if largest else _reduce.Min
            return op.apply(self, axis=None, keepdims=False)
        if not isinstance(dim, (builtins.int, np.integer)):
            raise TypeError(f"{name}: dim must be an int, got {dim!r}")
        op = _reduce.MaxAlong if largest else _reduce.MinAlong
        values = op.apply(self, dim=builtins.int(dim), keepdim=keepdim)
        picked = (values._ctx if values._ctx is not None else None)
        indices = picked.indices if picked is not None else _arg(
            self.data, builtins.int(dim), keepdim, largest)
        return MaxMin(values, Tensor._wrap(np.asarray(indices, dtype=np.int64)))

    def max(self, dim: Any = None, keepdim: builtins.bool = False, *, axis: Dims = None,
            keepdims: builtins.bool | None = None) -> Tensor | MaxMin:
        """The maximum (a 0-d tensor); with ``dim``, a named tuple ``(values, indices)``;
        with a tensor, the elementwise maximum."""
        dim, keepdim = _alias(dim, axis, keepdim, keepdims)
        return self._extreme(dim, keepdim, True, "max")

    def min(self, dim: Any = None, keepdim: builtins.bool = False, *, axis: Dims = None,
            keepdims: builtins.bool | None = None) -> Tensor | MaxMin:
        dim, keepdim = _alias(dim, axis, keepdim, keepdims)
        return self._extreme(dim, keepdim, False, "min")

    def amax(self, dim: Dims = (), keepdim: builtins.bool = False) -> Tensor:
        """Maximum over ``dim`` (all dims when empty); ties share the gradient."""
        return _reduce.Max.apply(self, axis=_dims(dim) if dim != () else None,
                                 keepdims=keepdim)

    def amin(self, dim: Dims = (), keepdim: builtins.bool = False) -> Tensor:
        return _reduce.Min.apply(self, axis=_dims(dim) if dim != () else None,
                                 keepdims=keepdim)

    def argmax(self, dim: builtins.int | None = None, keepdim: builtins.bool = False
               ) -> Tensor:
        return Tensor._wrap(_arg(self.data, dim, keepdim, True))

    def argmin(self, dim: builtins.int | None = None, keepdim: builtins.bool = False
               ) -> Tensor:
        return Tensor._wrap(_arg(self.data, dim, keepdim, False))

    def norm(self, p: Any = "fro", dim: Dims = None, keepdim: builtins.bool = False
             ) -> Tensor:
        """The vector p-norm over ``dim`` (all elements by default): 2 (= "fro"), 1,
        inf, or any other positive p."""
        x = self._floating()
        if p in ("fro", 2, 2.0):
            return _reduce.Norm.apply(x, axis=_dims(dim), keepdims=keepdim)
        if p in (math.inf, "inf"):
            return x.abs().amax(dim if dim is not None else (), keepdim)
        if p in (1, 1.0):
            return x.abs().sum(dim, keepdim)
        return (x.abs() ** builtins.float(p)).sum(dim, keepdim) ** (1.0 / builtins.float(p))

    def logsumexp(self, dim: Dims, keepdim: builtins.bool = False) -> Tensor:
        """log(sum(exp(x))) over ``dim``, computed stably (the maximum is shifted out)."""
        x = self._floating()
        shift = x.detach().amax(dim, keepdim=True)
        shift = shift.masked_fill(~np.isfinite(shift.data), 0.0)
        out = (x - shift).exp().sum(dim, keepdim=True).log() + shift
        return out if keepdim else out.squeeze(dim)

    def any(self, dim: Dims = None, keepdim: builtins.bool = False) -> Tensor:
        return Tensor._wrap(np.asarray(np.any(self.data, axis=_dims(dim), keepdims=keepdim)))

    def all(self, dim: Dims = None, keepdim: builtins.bool = False) -> Tensor:
        return Tensor._wrap(np.asarray(np.all(self.data, axis=_dims(dim), keepdims=keepdim)))

    # ---- shape ----
    def reshape(self, *shape: builtins.int | Sequence[builtins.int]) -> Tensor:
        return _shape.Reshape.apply(self, shape=_sizes(shape))

    def view(self, *shape: Any) -> Tensor:
        """A reshape that shares memory; like PyTorch's it refuses a layout that would
        need a copy (call ``contiguous()`` or ``reshape`` then). ``view(dtype)`` is not
        supported."""
        out = self.reshape(*shape)
        if out.data.size and not np.shares_memory(out.data, self.data):
            raise RuntimeError(f"view: shape {tuple(out.shape)} is not compatible with the "
                               f"memory layout of this tensor of shape {self.shape} (e.g. "
                               f"after a transpose); use .reshape(...) or "
                               f".contiguous().view(...)")
        return out

    def view_as(self, other: Tensor) -> Tensor:
        return self.view(other.shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return self.reshape(other.shape)

    def flatten(self, start_dim: builtins.int = 0, end_dim: builtins.int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        start, end = _dim(start_dim, self.ndim, "flatten"), _dim(end_dim, self.ndim, "flatten")
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                             f"for a tensor of shape {self.shape}")
        shape = self.shape
        return self.reshape(shape[:start] + (-1,) + shape[end + 1:])

    def squeeze(self, dim: Dims = None) -> Tensor:
        """Drop dims of size 1 (only among ``dim`` if given; other sizes are kept)."""
        if dim is None:
            dims = [d for d, n in enumerate(self.shape) if n == 1]
        else:
            dims = [_dim(d, self.ndim, "squeeze") for d in _as_tuple(dim)]
            dims = [d for d in dims if self.ndim and self.shape[d] == 1]
        if not dims:
            return _shape.Reshape.apply(self, shape=self.shape)
        return self.reshape(tuple(n for d, n in enumerate(self.shape) if d not in dims))

    def unsqueeze(self, dim: builtins.int) -> Tensor:
        d = _dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def transpose(self, dim0: builtins.int, dim1: builtins.int) -> Tensor:
        return _shape.Transpose.apply(self, dim0=_dim(dim0, self.ndim, "transpose"),
                                      dim1=_dim(dim1, self.ndim, "transpose"))

    swapaxes = transpose

    def permute(self, *dims: builtins.int | Sequence[builtins.int]) -> Tensor:
        return _shape.Permute.apply(self, dims=_sizes(dims))

    def t(self) -> Tensor:
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor of at most 2 dims, got shape {self.shape}; "
                             f"use transpose(dim0, dim1)")
        return self if self.ndim < 2 else self.transpose(0, 1)

    @property
    def T(self) -> Tensor:
        """All dims reversed (the matrix transpose for 2-D)."""
        return _shape.Permute.apply(self, dims=tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self) -> Tensor:  # noqa: N802 (PyTorch's name)
        return self.transpose(-2, -1)

    def expand(self, *sizes: Any) -> Tensor:
        sizes = _sizes(sizes)
        extra = len(sizes) - self.ndim
        if extra < 0:
            raise RuntimeError(f"expand: {len(sizes)} sizes for a tensor of shape "
                               f"{self.shape}; give at least one per dim")
        shape = tuple(self.shape[i - extra] if n == -1 and i >= extra else n
                      for i, n in enumerate(sizes))
        return _shape.Expand.apply(self, shape=shape)

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(other.shape)

    def repeat(self, *sizes: Any) -> Tensor:
        return _shape.Repeat.apply(self, repeats=_sizes(sizes))

    def split(self, split_size_or_sections: builtins.int | Sequence[builtins.int],
              dim: builtins.int = 0) -> tuple[Tensor, ...]:
        """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or pieces of
        the given sizes."""
        d = _dim(dim, self.ndim, "split")
        length = self.shape[d]
        if isinstance(split_size_or_sections, (builtins.int, np.integer)):
            step = builtins.int(split_size_or_sections)
            if step <= 0:
                raise ValueError(f"split: split_size must be positive, got {step}")
            sizes = [min(step, length - start) for start in range(0, length, step)] or [0]
        else:
            sizes = [builtins.int(n) for n in split_size_or_sections]
            if sum(sizes) != length:
                raise ValueError(f"split: sizes {sizes} do not add up to {length}, the size "
                                 f"of dim {dim} of a tensor of shape {self.shape}")
        pieces, start = [], 0
        for n in sizes:
            index = (slice(None),) * d + (slice(start, start + n),)
            pieces.append(self[index])
            start += n
        return tuple(pieces)

    def chunk(self, chunks: builtins.int, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        if chunks <= 0:
            raise ValueError(f"chunk: chunks must be positive, got {chunks}")
        length = self.shape[_dim(dim, self.ndim, "chunk")]
        return self.split(max(1, -(-length // chunks)), dim)

    def unbind(self, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        d = _dim(dim, self.ndim, "unbind")
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))

    def tril(self, diagonal: builtins.int = 0) -> Tensor:
        keep = np.tri(*self.shape[-2:], k=diagonal, dtype=builtins.bool)
        return self.masked_fill(~keep, 0)

    def triu(self, diagonal: builtins.int = 0) -> Tensor:
        keep = ~np.tri(*self.shape[-2:], k=diagonal - 1, dtype=builtins.bool)
        return self.masked_fill(~keep, 0)

    # ---- fused ----
    def softmax(self, dim: builtins.int = -1, *, axis: builtins.int | None = None) -> Tensor:
        return _norm.Softmax.apply(self._floating(), axis=dim if axis is None else axis)

    def log_softmax(self, dim: builtins.int = -1, *, axis: builtins.int | None = None
                    ) -> Tensor:
        return _norm.LogSoftmax.apply(self._floating(), axis=dim if axis is None else axis)

    # ---- in place ----
    def _check_inplace(self, op: str, *operands: Any) -> None:
        """PyTorch's rule: no in-place change of a tensor that requires grad while the
        graph is being recorded (a leaf's gradient would lose its meaning; a recorded
        tensor's consumers would see the new values). And since an in-place change is
        never recorded here, an operand that requires grad would lose its gradient
        silently (PyTorch records it): that is refused too."""
        if not engine._grad_enabled:
            return
        for operand in operands:
            if isinstance(operand, Tensor) and operand.requires_grad:
                raise RuntimeError(f"{op}: a tensor that requires grad (shape "
                                   f"{operand.shape}) written into another in place would "
                                   f"lose its gradient here; build the result out of place "
                                   f"(e.g. with torch.cat or torch.stack)")
        if self.requires_grad:
            if self._ctx is None:
                raise RuntimeError(f"{op}: a leaf tensor that requires grad (shape "
                                   f"{self.shape}) cannot be changed in place; do it "
                                   f"under tinygrad_attn.no_grad()")
            raise RuntimeError(f"{op}: a tensor computed from others (shape {self.shape}, "
                               f"made by {self._ctx.name!r}) cannot be changed in place "
                               f"while recording the graph; use the out-of-place op")

    def _write(self, values: np.ndarray, op: str, index: Any = ...) -> Tensor:
        """Write ``values`` into ``data`` (at ``index``) and bump the version: the one
        place every in-place change goes through."""
        self._check_inplace(op)
        if not np.can_cast(values.dtype, self.data.dtype, "same_kind"):
            raise RuntimeError(f"{op}: result type {values.dtype} can't be cast to the "
                               f"dtype {self.dtype} of the tensor changed in place")
        if not self.data.flags.writeable:
            raise RuntimeError(f"{op}: this tensor (shape {self.shape}) shares read-only "
                               f"memory (an expand or a constant); clone() it first")
        target_shape = self.shape if index is ... else self.data[index].shape
        try:
            out_shape = np.broadcast_shapes(values.shape, target_shape)
        except ValueError:
            out_shape = None
        if out_shape != target_shape:
            raise RuntimeError(f"{op}: a value of shape {values.shape} does not fit the "
                               f"target of shape {target_shape}")
        self.data[index] = values
        self._bump_version()
        return self

    def _inplace(self, op: str, compute: Any, *args: Any, **kwargs: Any) -> Tensor:
        """``self = compute(self, *args)`` in place: the out-of-place op's result (so the
        maths and the promotion are the op's own), written back into ``data``."""
        self._check_inplace(op, *args, *kwargs.values())
        with engine.no_grad():
            result = compute(self, *args, **kwargs)
        return self._write(result.data, op)

    def add_(self, other: ArrayLike, *, alpha: builtins.float = 1) -> Tensor:
        return self._inplace("add_", Tensor.add, other, alpha=alpha)

    def sub_(self, other: ArrayLike, *, alpha: builtins.float = 1) -> Tensor:
        return self._inplace("sub_", Tensor.sub, other, alpha=alpha)

    def mul_(self, other: ArrayLike) -> Tensor:
        return self._inplace("mul_", Tensor.__mul__, other)

    def div_(self, other: ArrayLike) -> Tensor:
        return self._inplace("div_", Tensor.__truediv__, other)

    def pow_(self, exponent: ArrayLike) -> Tensor:
        return self._inplace("pow_", Tensor.__pow__, exponent)

    def clamp_(self, min: builtins.float | None = None,  # noqa: A002
               max: builtins.float | None = None) -> Tensor:  # noqa: A002
        return self._inplace("clamp_", Tensor.clamp, min, max)

    def masked_fill_(self, mask: ArrayLike, value: ArrayLike) -> Tensor:
        return self._inplace("masked_fill_", Tensor.masked_fill, mask, value)

    def zero_(self) -> Tensor:
        return self._write(np.zeros((), self.data.dtype), "zero_")

    def fill_(self, value: ArrayLike) -> Tensor:
        return self._write(np.asarray(_number(value), self.data.dtype), "fill_")

    def copy_(self, src: ArrayLike) -> Tensor:
        self._check_inplace("copy_", src)
        array = engine.array_of(src)
        return self._write(array.astype(self.data.dtype, copy=False), "copy_")

    def uniform_(self, a: builtins.float = 0.0, b: builtins.float = 1.0) -> Tensor:
        values = random.generator().uniform(a, b, self.shape)
        return self._write(values.astype(self.data.dtype), "uniform_")

    def normal_(self, mean: builtins.float = 0.0, std: builtins.float = 1.0) -> Tensor:
        values = random.generator().normal(mean, std, self.shape)
        return self._write(values.astype(self.data.dtype), "normal_")

    def __iadd__(self, other: ArrayLike) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: ArrayLike) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: ArrayLike) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: ArrayLike) -> Tensor:
        return self.div_(other)

    def __setitem__(self, index: Any, value: ArrayLike) -> None:
        self._check_inplace("setitem", value)
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        array = engine.array_of(value) if not isinstance(value, _SCALARS) else np.asarray(
            value, dtype=dtypes.scalar_dtype(value, self.data.dtype))
        self._write(array, "setitem", index)


def _scalar_tensor(value: Any, dtype: np.dtype) -> Tensor:
    """The cached constant tensor for a Python scalar: a few constants (1.0, 0.5, ...)
    are used over and over, and building each again costs more than a small op. It is
    shared, so its array is read-only: an in-place change of it raises instead of
    changing every later use."""
    table = _constants.get(dtype)
    if table is None:
        table = _constants[dtype] = {}
    # -0.0 and 0.0 compare (and hash) equal: a zero carries its sign in its key.
    key = value if value else (value, math.copysign(1.0, value))
    const = table.get(key)
    if const is None:
        if len(table) > 4096:
            table.clear()
        array = np.asarray(value, dtype)
        array.flags.writeable = False
        const = table[key] = Tensor._wrap(array)
    return const


_constants: dict[np.dtype, dict[Any, Tensor]] = {}

# The names `to("float32")` may mean: every dtype the dtypes module names.
_DTYPE_NAMES = {name for name, value in vars(dtypes).items()
                if isinstance(value, np.dtype) and name.islower()}


def check_device(device: Any, where: str) -> None:
    """Only the CPU is here: ``"cpu"`` (or None) passes, any other device is refused."""
    if device is None:
        return
    name = str(getattr(device, "type", device))
    if name.split(":")[0] != "cpu":
        raise RuntimeError(f"{where}: device {device!r} is not available: tinygrad_attn runs "
                           f"on the CPU only (use 'cpu')")


def _number(value: Any) -> Any:
    """A Python number from a number or a one-element tensor (None stays None)."""
    if isinstance(value, Tensor):
        return value.item()
    return value


def _alias(dim: Any, axis: Any, keepdim: builtins.bool, keepdims: builtins.bool | None
           ) -> tuple[Any, builtins.bool]:
    """PyTorch's ``dim``/``keepdim``, with NumPy's ``axis``/``keepdims`` accepted too."""
    if axis is not None:
        if dim is not None:
            raise TypeError("pass dim or axis, not both")
        dim = axis
    return dim, (keepdim if keepdims is None else keepdims)


def _as_tuple(dim: Any) -> tuple[builtins.int, ...]:
    return tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)


def _dims(dim: Dims) -> Any:
    """dim as the ops take it: None, an int, or a tuple."""
    if dim is None or isinstance(dim, (builtins.int, np.integer)):
        return dim
    if not isinstance(dim, (tuple, list)):
        raise TypeError(f"dim (axis) must be an int or a tuple of ints, got {dim!r}")
    return tuple(dim)


def _dim(dim: builtins.int, ndim: builtins.int, op: str) -> builtins.int:
    if not isinstance(dim, (builtins.int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dims "
                         f"(expected to be in [{-size}, {size - 1}])")
    return builtins.int(dim) % size


def _sizes(sizes: tuple[Any, ...]) -> tuple[builtins.int, ...]:
    """``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` alike."""
    if len(sizes) == 1 and not isinstance(sizes[0], (builtins.int, np.integer)):
        sizes = tuple(sizes[0])
    return tuple(builtins.int(n) for n in sizes)


def _correction(unbiased: builtins.bool | None, correction: builtins.int | None
                ) -> builtins.int:
    if unbiased is not None and correction is not None:
        raise TypeError("var/std: pass unbiased or correction, not both")
    if unbiased is not None:
        return 1 if unbiased else 0
    return 1 if correction is None else correction


def _arg(data: np.ndarray, dim: builtins.int | None, keepdim: builtins.bool,
         largest: builtins.bool) -> np.ndarray:
    """argmax/argmin as int64; over the flattened tensor when dim is None."""
    pick = np.argmax if largest else np.argmin
    name = "argmax" if largest else "argmin"
    if data.size == 0:
        raise RuntimeError(f"{name}: an empty tensor of shape {data.shape} has no "
                           f"{'maximum' if largest else 'minimum'}")
    if dim is None:
        out = np.asarray(pick(data), dtype=np.int64)
        return out.reshape((1,) * data.ndim) if keepdim else out
    axis = _dim(dim, data.ndim, name)
    if data.ndim == 0:
        return np.zeros((), dtype=np.int64)
    return np.asarray(pick(data, axis=axis, keepdims=keepdim), dtype=np.int64)
