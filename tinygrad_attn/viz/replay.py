"""Per-edge gradients for pictures, by replaying the backward pass.

``engine.backward`` sums what every consumer sends to a tensor and keeps only the total.
A picture wants more: what each consumer sent along each edge. Ops' ``backward`` is pure,
so the same pass can be run again from a seed (ones for a one-element root, the loss),
through the recorded ops in reverse topological order, touching no ``.grad``. Nothing is
recorded during training: the cost is paid only by whoever draws. The graph must still
hold its saved values: ``backward(retain_graph=True)`` keeps them, plain ``backward()``
frees them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from tinygrad_attn.engine import toposort, unbroadcast
from tinygrad_attn.tensor import Tensor

# An edge of the graph: (id of the consuming tensor, position of the input in its op).
EdgeKey = tuple[int, int]
# Chooses, per edge (input, consumer, position), a key under which to sum the edge's
# gradient as a vector (None: keep only its norm).
MergeKey = Callable[[Tensor, Tensor, int], Hashable | None]


def grad_norm(g: np.ndarray) -> float:
    """The Frobenius norm in float64 (NaN or Inf when the gradient holds them)."""
    flat = np.asarray(g, dtype=np.float64).ravel()
    return float(np.sqrt(np.dot(flat, flat)))


@dataclass
class Step:
    """One op's backward in the replay: the tensor it made, what it received and sent."""

    node: Tensor
    received: float
    sent: list[tuple[int, float | None]]  # (input position, norm or None: not needed)


@dataclass
class Replay:
    """The gradients of one backward pass, per edge and per tensor.

    ``edge_norms`` maps (id(consumer), position) to the norm of the gradient that the
    consumer's backward sent to that input (at the input's shape). ``grads`` maps
    id(tensor) to its total gradient (the sum over its consumers, leaves included) and
    ``tensor_norms`` to that gradient's norm; ``merged`` holds the vector sums chosen by a
    :data:`MergeKey` (``merge_tag`` names who chose them). ``seed`` is the gradient the
    pass started from (None: the graph only, no gradients).
    """

    root: Tensor
    order: list[Tensor]
    edge_norms: dict[EdgeKey, float] = field(default_factory=dict)
    tensor_norms: dict[int, float] = field(default_factory=dict)
    grads: dict[int, np.ndarray] = field(default_factory=dict)
    merged: dict[Hashable, np.ndarray] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    seed: np.ndarray | None = None
    merge_tag: Hashable = None

    @property
    def has_gradients(self) -> bool:
        return bool(self.tensor_norms)


def _add(store: dict, key: Hashable, g: np.ndarray) -> None:
    previous = store.get(key)
    # never in place: g may be another edge's gradient too; numpy gives 0-d sums as scalars
    store[key] = g if previous is None else np.asarray(previous + g)


def walk(root: Tensor, who: str) -> list[Tensor]:
    """The recorded tensors behind ``root``, inputs first; a clear error, naming ``who``,
    when ``backward()`` has freed the graph."""
    if root._ctx is None:
        return []
    try:
        return toposort(root)
    except RuntimeError as err:
        raise RuntimeError(
            f"{who}: this graph was freed by backward(), so there is nothing left to draw. "
            f"Call loss.backward(retain_graph=True) to draw the gradients after the "
            f"backward pass, or draw before calling backward()") from err


def default_seed(root: Tensor) -> np.ndarray | None:
    """Ones for a one-element root that requires grad (d loss / d loss), else None."""
    if root.requires_grad and root.data.size == 1:
        return np.ones(root.shape, dtype=root.dtype)
    return None


def replay(root: Tensor, seed: np.ndarray | None = None, merge_key: MergeKey | None = None,
           *, merge_tag: Hashable = None, who: str = "replay") -> Replay:
    """Run the backward pass of ``root`` again, recording every edge's gradient norm.

    ``seed`` is d(something) / d root, the gradient ``backward(gradient)`` would start
    from; by default ones for a one-element root (a loss), and no gradients at all for a
    larger root (the result then holds the graph's order only). Raises RuntimeError
    naming ``who`` when the graph was freed, or when a value it saved was changed in place
    after the forward pass. Gradients are the engine's, to the bit: the same backward
    functions, the same order of summation, the same dtype casts. Every tensor's total
    gradient is kept (memory about that of the forward pass's activations).
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"{who}: expected a Tensor, got {type(root).__name__}")
    order = walk(root, who)
    result = Replay(root, order, merge_tag=merge_tag)
    seed = default_seed(root) if seed is None else np.asarray(
        seed.data if isinstance(seed, Tensor) else seed)
    if seed is None:
        return result
    if seed.shape != root.shape:
        raise ValueError(f"{who}: seed of shape {seed.shape} does not match the root's "
                         f"shape {root.shape}")
    seed = seed.astype(root.dtype, copy=False)
    result.seed = seed
    totals: dict[int, np.ndarray] = {id(root): seed}
    leaves: dict[int, Tensor] = {}
    for node in reversed(order):
        grad = totals.pop(id(node), None)
        if grad is None:
            continue
        result.tensor_norms[id(node)] = grad_norm(grad)
        result.grads[id(node)] = grad
        op = node._ctx
        try:
            op.check_saved_versions()
        except RuntimeError as err:
            raise RuntimeError(f"{who}: {err}. Draw before the optimizer step (or any "
                               f"other in-place change)") from err
        step = Step(node, result.tensor_norms[id(node)], [])
        for position, (inp, g) in enumerate(zip(op.inputs, op.backward(grad))):
            if g is None or not inp.requires_grad:
                step.sent.append((position, None))
                continue
            if g.shape != inp.shape:
                g = unbroadcast(g, inp.shape)
            if g.dtype != inp.dtype:  # as the engine does
                g = g.astype(inp.dtype)
            norm = grad_norm(g)
            result.edge_norms[(id(node), position)] = norm
            step.sent.append((position, norm))
            if merge_key is not None:
                key = merge_key(inp, node, position)
                if key is not None:
                    _add(result.merged, key, g)
            _add(totals, id(inp), g)
            if inp._ctx is None:
                leaves[id(inp)] = inp
        result.steps.append(step)
    for key in leaves:
        result.tensor_norms[key] = grad_norm(totals[key])
        result.grads[key] = totals[key]
    if root._ctx is None:
        result.tensor_norms[id(root)] = grad_norm(seed)
        result.grads[id(root)] = seed
    return result
