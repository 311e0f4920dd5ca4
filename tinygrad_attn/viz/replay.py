"""Per-edge gradients for pictures, by replaying the backward pass.

``engine.backward`` sums what every consumer sends to a tensor and keeps only the total.
A picture wants more: what each consumer sent along each edge. Ops' ``backward`` is pure,
so the same pass can be run again from the seed that ``backward()`` stored on the root,
through the recorded ops in reverse topological order, touching no ``.grad``. Nothing is
recorded during training: the cost is paid only by whoever draws.
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
    consumer's backward sent to that input (at the input's shape). ``tensor_norms`` maps
    id(tensor) to the norm of its total gradient (the sum over its consumers), leaves
    included. ``kept`` holds full total gradients for the tensor ids asked for, and
    ``merged`` the vector sums chosen by a :data:`MergeKey`.
    """

    root: Tensor
    order: list[Tensor]
    edge_norms: dict[EdgeKey, float] = field(default_factory=dict)
    tensor_norms: dict[int, float] = field(default_factory=dict)
    kept: dict[int, np.ndarray] = field(default_factory=dict)
    merged: dict[Hashable, np.ndarray] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)

    @property
    def has_gradients(self) -> bool:
        return bool(self.tensor_norms)


def _add(store: dict, key: Hashable, g: np.ndarray) -> None:
    previous = store.get(key)
    store[key] = g if previous is None else previous + g  # never in place: g is shared


def replay(root: Tensor, seed: np.ndarray | None = None, keep: set[int] | None = None,
           merge_key: MergeKey | None = None) -> Replay:
    """Run the backward pass of ``root`` again, recording every edge's gradient norm.

    ``seed`` defaults to the seed of the last ``root.backward()``; with neither, the
    result holds the graph's order and no gradients (a picture before backward).
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"replay: expected a Tensor, got {type(root).__name__}")
    order = toposort(root) if root._ctx is not None else []
    result = Replay(root, order)
    seed = root._backward_seed if seed is None else np.asarray(seed)
    if seed is None:
        return result
    if seed.shape != root.shape:
        raise ValueError(f"replay: seed of shape {seed.shape} does not match the root's "
                         f"shape {root.shape}")
    keep = keep or set()
    totals: dict[int, np.ndarray] = {id(root): seed}
    leaves: dict[int, Tensor] = {}
    for node in reversed(order):
        grad = totals.pop(id(node), None)
        if grad is None:
            continue
        result.tensor_norms[id(node)] = grad_norm(grad)
        if id(node) in keep:
            result.kept[id(node)] = grad
        op = node._ctx
        step = Step(node, result.tensor_norms[id(node)], [])
        for position, (inp, g) in enumerate(zip(op.inputs, op.backward(grad))):
            if g is None or not inp.requires_grad:
                step.sent.append((position, None))
                continue
            if g.shape != inp.shape:
                g = unbroadcast(g, inp.shape)
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
        if key in keep:
            result.kept[key] = totals[key]
    if root._ctx is None:
        result.tensor_norms[id(root)] = grad_norm(seed)
    return result
