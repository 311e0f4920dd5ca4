"""The autograd engine: grad mode, the Op base class, and the backward pass.

Every differentiable operation is a subclass of :class:`Op` with a ``forward`` that maps
numpy arrays to a numpy array and a ``backward`` that maps the gradient at the output's
shape to one gradient per input. The engine alone sums broadcast dimensions back to each
input's shape, so ops never have to think about broadcasting in their backward.

The graph an op records is what a renderer walks: ``tensor._ctx`` is the Op that made the
tensor, ``op.inputs`` the tensors it read, ``op.name`` its name, ``op.scope`` the module
path of the call that ran it. Leaves carry ``tensor.name`` (modules set their parameter
paths there). ``backward()`` frees what the ops saved, and the edges, unless asked to
retain the graph; a freed op has ``op.inputs is None``.

This module imports nothing of the package: ops build on it, and tensors on the ops.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

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

# In-place changes anywhere so far. An op records the count when it is recorded; a
# tensor's version cell holds [version, the count at its last in-place change], so "an
# input changed after this op saw it" is one comparison, and a backward pass with no
# in-place change since the forward pass (the usual case) checks one int per op.
_epoch = 0
# The version cell of every tensor never changed in place: shared and immutable, so a new
# tensor costs no allocation; a tensor gets a list of its own (own_versions) when it is
# first changed, or when a view or a saved output must share or watch its counter.
UNCHANGED = (0, 0)

# name -> Op subclass: the table the engine, gradcheck, the tests and the renderer read.
OPS: dict[str, type[Op]] = {}

_F = TypeVar("_F", bound=Callable[..., Any])
Axis = int | tuple[int, ...] | None


class Node:
    """A value in the graph. ``Tensor`` derives from it; the ops, which come before the
    tensor in the import order, recognise tensors among their arguments by it."""

    __slots__ = ()


def array_of(value: Any) -> np.ndarray:
    """The array behind a tensor; anything else (a mask, a target, an index given as an
    array or a list) as an array."""
    return value.data if isinstance(value, Node) else np.asarray(value)


class _GradMode:
    """A context manager and decorator that sets grad mode for its block (PyTorch's
    ``no_grad``, ``enable_grad`` and ``set_grad_enabled`` are instances of this)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = bool(enabled)
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        global _grad_enabled
        self._previous.append(_grad_enabled)
        _grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._previous.pop()

    def __call__(self, fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _GradMode(self.enabled):  # no_grad() takes no argument
                return fn(*args, **kwargs)
        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):  # noqa: N801 (PyTorch's name)
    """Inside this block (or decorated function) operations record no graph."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(_GradMode):  # noqa: N801
    """Inside this block (or decorated function) operations record the graph again."""

    def __init__(self) -> None:
        super().__init__(True)


class set_grad_enabled(_GradMode):  # noqa: N801
    """Turn graph recording on or off: now (as a call) or for a block (as a context)."""

    def __init__(self, mode: bool) -> None:
        global _grad_enabled
        super().__init__(mode)
        # As a plain call it takes effect at once, as PyTorch's; __enter__ then only
        # remembers what to restore.
        self._before_call = _grad_enabled
        _grad_enabled = self.enabled

    def __enter__(self) -> None:
        self._previous.append(self._before_call)

    def __call__(self, fn: _F) -> _F:
        global _grad_enabled
        _grad_enabled = self._before_call  # as a decorator it acts only inside the call
        return super().__call__(fn)


def is_grad_enabled() -> bool:
    return _grad_enabled


def set_anomaly_hooks(hooks: Any) -> Any:
    """Install detect_anomaly's (on_record, on_backward) hooks, or None; returns the
    hooks they replace."""
    global _anomaly_hooks
    previous, _anomaly_hooks = _anomaly_hooks, hooks
    return previous


def set_scope(path: str) -> str:
    """Label the ops recorded from now on with a module path; returns the label it replaces."""
    global _current_scope
    previous, _current_scope = _current_scope, path
    return previous


@contextlib.contextmanager
def scope(path: str) -> Iterator[None]:
    """Label every op recorded inside the block with a module path (pictures read it)."""
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
      want one, so the others can be skipped. ``backward`` never writes into ``grad``:
      the same array may be another op's gradient too.

    Class flags tell the engine what the saved values depend on: ``saves_inputs`` (the
    backward reads its inputs' values: an in-place change of an input after the forward
    pass makes backward refuse), ``saves_output`` (likewise for the output's values) and
    ``is_view`` (the output shares its first input's memory, so both share one version
    counter, as PyTorch's views do).
    """

    name: ClassVar[str] = ""
    saves_inputs: ClassVar[bool] = True
    saves_output: ClassVar[bool] = False
    is_view: ClassVar[bool] = False
    # Set on an instance by Tensor.retain_grad(): the output's gradient is kept in .grad.
    retains_grad: bool = False

    inputs: tuple[Tensor, ...] | None
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
        if type(out) is not np.ndarray:  # numpy reductions return scalars for 0-d
            out = np.asarray(out)
        # Every op has an input, and its _wrap makes a plain library tensor: reaching the
        # constructor through it keeps this module free of a tensor import.
        result = inputs[0]._wrap(out)
        if cls.is_view and np.may_share_memory(out, inputs[0].data):
            result._versions = own_versions(inputs[0])
        if True in needs and _grad_enabled:
            op.inputs = inputs
            op.needs_input_grad = needs
            op.scope = _current_scope
            op.epoch = _epoch
            if cls.saves_output:
                op.output_versions = own_versions(result)
            result.requires_grad = True
            result._ctx = op
            if _anomaly_hooks is not None:  # detect_anomaly: remember the call site
                _anomaly_hooks[0](op, params)
        return result

    def check_saved_versions(self) -> None:
        """Refuse to run backward on values that were changed in place after forward."""
        if self.saves_inputs:
            for position, t in enumerate(self.inputs):
                if t._versions[1] > self.epoch:
                    raise _modified_error(self, f"input {position}", t.data, t._versions[0])
        if self.saves_output and self.output_versions[1] > self.epoch:
            raise _modified_error(self, "its output", None, self.output_versions[0])

    def free(self) -> None:
        """Drop the saved values and the edges: backward through this op is done."""
        self.__dict__.clear()
        self.inputs = None

    def __repr__(self) -> str:
        return f"<{self.name} op>"


def own_versions(t: Tensor) -> list[int]:
    """``t``'s own, mutable version cell (made on first need; see UNCHANGED)."""
    cell = t._versions
    if cell is UNCHANGED:
        cell = t._versions = [0, 0]
    return cell


def mark_modified(t: Tensor) -> None:
    """Record an in-place change of ``t``'s data (and so of every view sharing it)."""
    global _epoch
    _epoch += 1
    cell = own_versions(t)
    cell[0] += 1
    cell[1] = _epoch


def _modified_error(op: Op, what: str, data: np.ndarray | None, now: int) -> RuntimeError:
    shape = f" of shape {data.shape}" if data is not None else ""
    return RuntimeError(
        f"backward: one of the tensors needed for gradient computation has been modified "
        f"by an in-place operation: {what} of {op.name!r}{shape} was changed after the "
        f"forward pass used it (it is now at version {now}). Change it out of place, or "
        f"run the forward pass again after changing it")


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
    if type(grad) is not np.ndarray:
        grad = np.asarray(grad)
    return grad


_FREED = ("backward: trying to backward through the graph a second time (or to read "
          "values it saved after they were freed): {what} was freed by an earlier "
          "backward(). Pass retain_graph=True to that first backward() if you need to run "
          "backward twice or to draw the gradients afterwards")


def toposort(root: Tensor) -> list[Tensor]:
    """Tensors that ``root`` depends on through recorded ops, inputs before outputs.

    Iterative depth-first post-order: graphs of any depth, no recursion limit. Raises
    RuntimeError if the walk reaches an op that an earlier backward() freed.
    """
    order: list[Tensor] = []
    seen = {root}  # tensors hash by identity
    if root._ctx.inputs is None:
        raise RuntimeError(_FREED.format(what=f"the graph of this {root._ctx.name!r} "
                                              f"output"))
    stack = [(root, iter(root._ctx.inputs))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            ctx = parent._ctx
            if ctx is not None and parent not in seen:
                if ctx.inputs is None:
                    raise RuntimeError(_FREED.format(what=f"the {ctx.name!r} op that made "
                                                          f"a tensor of shape {parent.shape}"))
                seen.add(parent)
                stack.append((parent, iter(ctx.inputs)))
                break
        else:  # every parent is done: the node can follow them
            stack.pop()
            order.append(node)
    return order


def backward(root: Tensor, seed: np.ndarray, retain_graph: bool = False) -> None:
    """Propagate ``seed`` (d loss / d root) to every leaf that requires grad.

    Pending gradients live in a dict until their op's backward has run; leaves receive
    theirs once, at the end, into ``.grad`` (added to what is there). Unless
    ``retain_graph``, each op's saved values are freed as soon as its backward has run.
    """
    order = toposort(root) if root._ctx is not None else []
    pending: dict[Tensor, np.ndarray] = {root: seed}
    # Invariant: a pending gradient may be added into in place only if the engine
    # allocated it in this pass (the sum of two contributions) and handed it to no one
    # else; those tensors are in `owned`. Every other pending array (the seed, or what an
    # op's backward returned, which may alias its incoming gradient or another input's)
    # is only ever read.
    owned: set[Tensor] = set()
    hooks = _anomaly_hooks
    for node in reversed(order):
        op = node._ctx
        grad = pending.pop(node, None)
        if grad is None:  # no gradient reached this op (its output fed nothing needed)
            if not retain_graph:
                op.free()
            continue
        if owned:
            owned.discard(node)
        if op.epoch != _epoch:  # something changed in place since this op was recorded
            op.check_saved_versions()
        retains = op.retains_grad
        if retains:  # retain_grad(): keep a copy, summed over backward calls
            node.grad = grad.copy() if node.grad is None else node.grad + grad
        input_grads = op.backward(grad)
        if hooks is not None:  # detect_anomaly: raise on a NaN/Inf gradient
            hooks[1](op, grad, input_grads)
        inputs = op.inputs
        if not retain_graph:  # free what the op saved, and the edges (op.free, inlined)
            op.__dict__.clear()
            op.inputs = None
            if retains:
                op.retains_grad = True
        for inp, g in zip(inputs, input_grads):
            if g is None or not inp.requires_grad:
                continue
            data = inp.data
            if g.shape != data.shape:
                g = unbroadcast(g, data.shape)
            elif type(g) is not np.ndarray:
                g = np.asarray(g)
            if g.dtype is not data.dtype and g.dtype != data.dtype:
                g = g.astype(data.dtype)
            previous = pending.get(inp)
            if previous is None:
                pending[inp] = g
            elif inp in owned:
                previous += g
            else:
                total = previous + g
                # numpy returns a scalar for 0-d operands: keep an array we can add into
                pending[inp] = total if type(total) is np.ndarray else np.asarray(total)
                owned.add(inp)
    # What is left is the leaves' gradients (every recorded tensor was popped above).
    for leaf, g in pending.items():
        if leaf.grad is None:
            # A leaf keeps an array no one else holds: ours, or a copy.
            leaf.grad = g if leaf in owned else g.copy()
        else:
            leaf.grad += g
