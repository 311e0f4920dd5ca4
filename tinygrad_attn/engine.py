"""The autograd engine: the Op base class, grad mode, and the backward pass.

Every differentiable operation is a subclass of :class:`Op` with a ``forward`` that maps
numpy arrays to a numpy array and a ``backward`` that maps the gradient at the output's
shape to one gradient per input. The engine alone sums broadcast dimensions back to each
input's shape, so ops never have to think about broadcasting in their backward.

The graph an op records is what a renderer walks: ``tensor._ctx`` is the Op that made the
tensor, ``op.inputs`` the tensors it read, ``op.name`` its name, ``op.scope`` the module
path of the call that ran it. Leaves carry ``tensor.name`` (modules set their parameter
paths there).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

# Module-level switches read on every op: plain globals are the cheapest lookup.
_grad_enabled = True
# The module path of the module call running now ("" outside any module), for pictures.
_current_scope: str = ""
# detect_anomaly hooks (tinygrad_attn.anomaly): None when off, so the hot path pays one
# global read per op. When on: (on_record(op, params), on_backward(op, grad, input_grads)).
_anomaly_hooks: Any = None

_new_object = object.__new__  # ops define no __init__: skip the type call machinery

# name -> Op subclass: the table the engine, gradcheck, the tests and the renderer read.
OPS: dict[str, type[Op]] = {}


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside this block operations record no graph (and cost no bookkeeping)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def scope(path: str) -> Iterator[None]:
    """Label every op recorded inside the block with a module path (nn.Module does the
    same, inlined, around each call)."""
    global _current_scope
    previous, _current_scope = _current_scope, path
    try:
        yield
    finally:
        _current_scope = previous


def _describe(tensors: tuple[Tensor, ...]) -> str:
    return ", ".join(f"{t.data.shape} {t.data.dtype}" for t in tensors)


class Op:
    """One differentiable operation: ``forward`` and ``backward`` side by side.

    Subclasses set ``name`` and implement

    - ``forward(self, *arrays, **params) -> np.ndarray``: may store on ``self`` whatever
      backward needs (keep it to the cheapest thing: the output, a mask, a shape);
    - ``backward(self, grad) -> tuple``: one gradient (or None) per input, each at the
      shape the op broadcast that input to. ``self.needs_input_grad`` says which inputs
      want one, so the others can be skipped.
    """

    name: ClassVar[str] = ""

    inputs: tuple[Tensor, ...]
    needs_input_grad: tuple[bool, ...]
    scope: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in OPS:
                raise ValueError(f"op name {cls.name!r} registered twice")
            OPS[cls.name] = cls

    def forward(self, *arrays: np.ndarray, **params: Any) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    @classmethod
    def apply(cls, *inputs: Tensor, **params: Any) -> Tensor:
        """Run the op on tensors and, if any input wants a gradient, record it."""
        op = _new_object(cls)
        # The common arities are spelled out: this is the hot path of every op, and a
        # comprehension costs more than the numpy call on a small tensor.
        try:
            if len(inputs) == 2:
                a, b = inputs
                out = op.forward(a.data, b.data, **params)
                needs = (a.requires_grad, b.requires_grad)
            elif len(inputs) == 1:
                out = op.forward(inputs[0].data, **params)
                needs = (inputs[0].requires_grad,)
            else:
                out = op.forward(*[t.data for t in inputs], **params)
                needs = tuple([t.requires_grad for t in inputs])
        except (ValueError, TypeError) as err:
            raise _op_error(cls.name, err, inputs) from None
        result = _Tensor(out)
        if True in needs and _grad_enabled:
            op.inputs = inputs
            op.needs_input_grad = needs
            op.scope = _current_scope
            result.requires_grad = True
            result._ctx = op
            if _anomaly_hooks is not None:  # detect_anomaly: remember the call site
                _anomaly_hooks[0](op, params)
        return result

    def __repr__(self) -> str:
        return f"<{self.name} op>"


def _op_error(name: str, err: Exception, inputs: tuple[Tensor, ...]) -> Exception:
    """Name the op and its input shapes in numpy's error, keeping the error's kind."""
    message = str(err)
    if not message.startswith(f"{name}:"):
        message = f"{name}: {message} (inputs: {_describe(inputs)})"
    return (TypeError if isinstance(err, TypeError) else ValueError)(message)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the dimensions that broadcasting added or stretched."""
    extra = grad.ndim - len(shape)
    if extra > 0:
        if grad.flags.c_contiguous:
            # Summing leading axes of a contiguous array is one reduction over rows.
            grad = grad.reshape(-1, *grad.shape[extra:]).sum(axis=0)
        else:
            grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def toposort(root: Tensor) -> list[Tensor]:
    """Tensors that ``root`` depends on through recorded ops, inputs before outputs.

    Iterative depth-first post-order: graphs of any depth, no recursion limit.
    """
    order: list[Tensor] = []
    seen = {root}  # tensors hash by identity
    stack = [(root, iter(root._ctx.inputs))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if parent._ctx is not None and parent not in seen:
                seen.add(parent)
                stack.append((parent, iter(parent._ctx.inputs)))
                break
        else:  # every parent is done: the node can follow them
            stack.pop()
            order.append(node)
    return order


def backward(root: Tensor, seed: np.ndarray) -> None:
    """Propagate ``seed`` (d loss / d root) to every leaf that requires grad.

    Gradients of intermediate tensors live in a dict only until their op's backward has
    run; leaves accumulate into ``.grad``. The graph itself is left in place for drawing.
    """
    if root._ctx is None:
        _accumulate_leaf(root, seed, shared=True)
        return
    grads: dict[Tensor, np.ndarray] = {root: seed}
    # Arrays that may be referenced from more than one place (the seed, an array an op
    # passed through unchanged): never add into them in place, copy before keeping.
    handed_out: set[int] = {id(seed)}
    # Arrays the engine allocated itself while summing: safe to add into in place.
    owned: set[int] = set()
    for node in reversed(toposort(root)):
        grad = grads.pop(node, None)
        if grad is None:
            continue
        op = node._ctx
        input_grads = op.backward(grad)
        if _anomaly_hooks is not None:  # detect_anomaly: raise on a NaN/Inf gradient
            _anomaly_hooks[1](op, grad, input_grads)
        for inp, g in zip(op.inputs, input_grads):
            if g is None or not inp.requires_grad:
                continue
            if g.shape != inp.data.shape:
                g = unbroadcast(g, inp.data.shape)
            if inp._ctx is None:
                if g.dtype != inp.data.dtype:
                    g = g.astype(inp.data.dtype)
                _accumulate_leaf(inp, g, shared=id(g) in handed_out or g.base is not None)
                handed_out.add(id(g))
                continue
            previous = grads.get(inp)
            if previous is None:
                grads[inp] = g
                handed_out.add(id(g))
            elif id(previous) in owned:
                previous += g
            else:
                total = previous + g
                owned.add(id(total))
                grads[inp] = total


def _accumulate_leaf(leaf: Tensor, grad: np.ndarray, shared: bool) -> None:
    if leaf.grad is None:
        leaf.grad = grad.copy() if shared else grad
    else:
        leaf.grad += grad


_Tensor: Any = None  # bound by tinygrad_attn.tensor (it imports this module first)
