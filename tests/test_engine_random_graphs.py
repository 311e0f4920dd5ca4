"""Differential tests of the engine on random graphs.

Hypothesis draws programs: leaves, then 10-200 operations whose operands are picked from
everything made so far (so tensors are consumed 2-6 times, leaves are reused across the
graph, ``x * x`` and ``x + x`` appear, intermediates feed ops far downstream), mixing
arithmetic, matmul, unary maths, reductions, views, indexing with repeated indices,
concatenation, broadcasting and the fused ops. Every leaf's gradient is compared with

- a deliberately naive reference engine written here: its own topological order (Kahn's
  algorithm over consumer counts), its own broadcast reduction, a fresh copy of every
  array it passes or receives, and no in-place arithmetic, so it cannot alias; it shares
  only the ops' own vector-Jacobian rules with the engine under test;
- float64 central finite differences (``ta.gradcheck``) on smaller programs, which
  shares nothing with the engine.

A failing program shrinks to a small repro: its text is the list of instructions.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_attn as ta
from tinygrad_attn import Tensor

# Every tensor in a program has a shape that broadcasts against FULL, so most pairs of
# tensors can meet in a binary op; ops that would leave this family are written so they
# come back into it (a transpose is undone, an index keeps the length).
FULL = (2, 3, 4)
LEAF_SHAPES = [(2, 3, 4), (3, 4), (1, 4), (3, 1), (4,), (), (2, 1, 4), (2, 3, 1)]
OPS = ["add", "sub", "mul", "mul_self", "add_self", "div", "pow_const", "pow_tensor",
       "matmul", "exp", "log", "tanh", "relu", "sum_keep", "sum_lead", "mean_keep",
       "max_keep", "reshape", "transpose", "permute", "getitem_repeat", "getitem_basic",
       "concat", "softmax", "layer_norm", "sigmoid", "neg", "scalar"]


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(a, b, FULL)
    except ValueError:
        return False
    return True


class Program:
    """Builds one graph from a list of instructions; ``text`` replays it as code."""

    def __init__(self, leaf_shapes: list[tuple[int, ...]], instructions: list[tuple],
                 seed: int) -> None:
        self.leaf_shapes = leaf_shapes
        self.instructions = instructions
        self.seed = seed

    def leaves(self) -> list[Tensor]:
        """The drawn leaves, then one (k, k) matrix per width k = 1..4 for matmul."""
        rng = np.random.default_rng(self.seed)
        drawn = [Tensor(rng.uniform(-1.5, 1.5, shape), requires_grad=True)
                 for shape in self.leaf_shapes]
        squares = [Tensor(rng.uniform(-0.7, 0.7, (k, k)), requires_grad=True)
                   for k in range(1, 5)]
        return drawn + squares

    def build(self, leaves: list[Tensor]) -> Tensor:
        pool: list[Tensor] = []
        by_shape: dict[tuple[int, ...], list[Tensor]] = {}
        squares = leaves[-4:]

        def add(t: Tensor) -> None:
            pool.append(t)
            by_shape.setdefault(t.shape, []).append(t)

        for leaf in leaves[:-4]:
            add(leaf)
        for op, i, j, k in self.instructions:
            a = pool[i % len(pool)]
            shapes = sorted(s for s in by_shape if _broadcasts(s, a.shape))
            group = by_shape[shapes[j % len(shapes)]]
            b = group[(j // len(shapes)) % len(group)]
            out = self._apply(OPS[op % len(OPS)], a, b, k, squares)
            # Keep values in a range where no op overflows: squash what grew large.
            if np.abs(out.data).max(initial=0.0) > 8.0:
                out = out.tanh() * 4.0
            add(out)
        # Every tensor made feeds the loss, each with its own weight.
        total = None
        for n, t in enumerate(pool[len(leaves) - 4:] or pool):
            term = t.sum() * (0.5 + 0.1 * (n % 7))
            total = term if total is None else total + term
        return total

    @staticmethod
    def _apply(name: str, a: Tensor, b: Tensor, k: int, squares: list[Tensor]) -> Tensor:
        last = a.shape[-1] if a.ndim else 1
        if name == "add":
            return a + b
        if name == "sub":
            return a - b
        if name == "mul":
            return a * b
        if name == "mul_self":
            return a * a
        if name == "add_self":
            return a + a
        if name == "div":
            return a / (b * b + 1.0)
        if name == "pow_const":
            return a ** float(k % 3 + 1)
        if name == "pow_tensor":
            return a.sigmoid() ** b
        if name == "matmul":
            if a.ndim == 0:
                return a * b
            return a @ squares[last - 1]  # the same leaf wherever this width appears
        if name == "exp":
            return a.tanh().exp()
        if name == "log":
            return (a * a + 0.5).log()
        if name == "tanh":
            return a.tanh()
        if name == "relu":
            return (a + 0.05).relu()
        if name == "sigmoid":
            return a.sigmoid()
        if name == "neg":
            return -a
        if name == "scalar":
            return 1.5 - a * 0.75
        if a.ndim == 0:
            return a * 0.5
        axis = k % a.ndim
        if name == "sum_keep":
            return a.sum(axis=axis, keepdims=True)
        if name == "sum_lead":
            return a.sum(axis=0) if a.ndim > 1 else a.sum(axis=0, keepdims=True)
        if name == "mean_keep":
            return a.mean(axis=axis, keepdims=True)
        if name == "max_keep":
            return a.amax(dim=axis, keepdim=True) if k % 2 else a.max(axis, keepdim=True).values
        if name == "reshape":
            return a.reshape(-1).reshape(a.shape)
        if name == "transpose":
            if a.ndim < 2:
                return a * 1.25
            return (a.transpose(-1, -2) * 1.25).transpose(-1, -2)
        if name == "permute":
            order = tuple(reversed(range(a.ndim)))
            return (a.permute(order) + 0.25).permute(order)
        if name == "getitem_repeat":
            index = np.array([(k + n * n) % last for n in range(last)])  # repeats indices
            return a[..., index]
        if name == "getitem_basic":
            return a[..., :1] * a  # a slice broadcast back over the last axis
        if name == "concat":
            both = a * b
            width = both.shape[-1] if both.ndim else 1
            if width < 2:
                return both
            cut = 1 + k % (width - 1)
            return ta.concat([both[..., :cut], (both + a)[..., cut:]], axis=-1)
        if name == "softmax":
            return a.softmax(-1)
        if name == "layer_norm":
            if last < 2:
                return a * 0.5
            return ta.ops.layer_norm(a, last)
        raise AssertionError(name)

    def __repr__(self) -> str:
        return self.text()

    def text(self) -> str:
        lines = [f"leaves: {self.leaf_shapes}, seed {self.seed}"]
        lines += [f"  {OPS[op % len(OPS)]}(pool[{i}], partner {j}, k={k})"
                  for op, i, j, k in self.instructions]
        return "\n".join(lines)


# ---- the reference: naive, copying, out of place ----
def _reduce_to(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return np.array(grad)


def reference_gradients(root: Tensor) -> dict[int, np.ndarray]:
    """d root / d tensor for every tensor of the graph, keyed by id (all stay alive)."""
    nodes: dict[int, Tensor] = {}
    consumers: dict[int, int] = {}
    stack = [root]
    nodes[id(root)] = root
    while stack:
        t = stack.pop()
        if t._ctx is None:
            continue
        for inp in t._ctx.inputs:
            consumers[id(inp)] = consumers.get(id(inp), 0) + 1
            if id(inp) not in nodes:
                nodes[id(inp)] = inp
                stack.append(inp)
    grads = {id(root): np.ones(root.shape)}
    ready = [root]
    while ready:
        t = ready.pop()
        if t._ctx is None:
            continue
        g = grads.get(id(t))
        op = t._ctx
        if g is not None:
            sent = op.backward(np.array(g, copy=True))
        else:
            sent = [None] * len(op.inputs)
        for inp, part in zip(op.inputs, sent):
            if part is not None and inp.requires_grad:
                part = _reduce_to(np.array(part, copy=True), inp.shape)
                previous = grads.get(id(inp))
                grads[id(inp)] = part if previous is None else previous + part
            consumers[id(inp)] -= 1
            if consumers[id(inp)] == 0:
                ready.append(inp)
    return grads


def _check_against_reference(program: Program, passes: int = 2) -> None:
    leaves = program.leaves()
    root = program.build(leaves)
    expected = reference_gradients(root)
    for n in range(passes):
        root.backward(retain_graph=n < passes - 1)
        for position, leaf in enumerate(leaves):
            want = expected.get(id(leaf))
            want = np.zeros(leaf.shape) if want is None else want * (n + 1)
            got = np.zeros(leaf.shape) if leaf.grad is None else leaf.grad
            np.testing.assert_allclose(
                got, want, rtol=1e-9, atol=1e-9,
                err_msg=f"leaf {position} {leaf.shape}, pass {n + 1}\n{program.text()}")


instructions = st.tuples(st.integers(0, len(OPS) - 1), st.integers(0, 10**4),
                         st.integers(0, 10**4), st.integers(0, 10**4))


@st.composite
def programs(draw, min_size: int, max_size: int) -> Program:
    leaf_shapes = draw(st.lists(st.sampled_from(LEAF_SHAPES), min_size=1, max_size=4))
    body = draw(st.lists(instructions, min_size=min_size, max_size=max_size))
    return Program(leaf_shapes, body, draw(st.integers(0, 2**16)))


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(10, 60))
def test_random_graphs_match_the_naive_engine(program: Program) -> None:
    _check_against_reference(program)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(60, 200))
def test_large_random_graphs_match_the_naive_engine(program: Program) -> None:
    _check_against_reference(program)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(3, 14))
def test_random_graphs_match_finite_differences(program: Program) -> None:
    leaves = program.leaves()
    assert ta.gradcheck(lambda *xs: program.build(list(xs)), leaves, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("size", [1000, 2500, 5000])
def test_graphs_of_thousands_of_ops_match_the_naive_engine(size: int) -> None:
    # Big enough that CPython reuses the addresses of freed arrays many times over.
    rng = np.random.default_rng(size)
    body = [tuple(int(v) for v in row)
            for row in rng.integers(0, 10**4, size=(size, 4))]
    _check_against_reference(Program([(2, 3, 4), (3, 1), (4,)], body, size), passes=2)
