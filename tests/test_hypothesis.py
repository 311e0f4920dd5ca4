"""Property tests: random broadcastable shapes for binary ops, random reduction axes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tinygrad_attn as ta
from tinygrad_attn import Tensor

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(sorted(BINARY)),
       shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3),
       seed=st.integers(0, 2**16))
def test_binary_ops_broadcast_and_reduce_gradients(op, shapes, seed) -> None:
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes.input_shapes
    a = Tensor(rng.standard_normal(a_shape), requires_grad=True)
    b = Tensor(rng.uniform(0.5, 2.0, b_shape) * rng.choice([-1, 1], b_shape),
               requires_grad=True)
    out = BINARY[op](a, b)
    assert out.shape == shapes.result_shape
    assert ta.gradcheck(BINARY[op], [a, b])
    assert a.grad is None  # gradcheck restores the inputs' grads


@st.composite
def shape_and_axis(draw):
    shape = draw(array_shapes(min_dims=1, max_dims=4, max_side=4))
    axes = draw(st.one_of(
        st.none(),
        st.integers(-len(shape), len(shape) - 1),
        st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape),
                 unique=True).map(tuple)))
    return shape, axes


@settings(max_examples=60, deadline=None)
@given(case=shape_and_axis(), keepdims=st.booleans(),
       reduction=st.sampled_from(["sum", "mean", "max", "var"]), seed=st.integers(0, 2**16))
def test_reductions_over_random_axes(case, keepdims, reduction, seed) -> None:
    shape, axis = case
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal(shape), requires_grad=True)
    method = "amax" if reduction == "max" else reduction  # max(dim) gives (values, indices)
    fn = lambda t: getattr(t, method)(axis, keepdim=keepdims) if axis is not None or (
        method != "amax") else t.amax(keepdim=keepdims)
    reference = {"sum": np.sum, "mean": np.mean, "max": np.max,
                 "var": lambda a, axis, keepdims: np.var(a, axis=axis, keepdims=keepdims,
                                                         ddof=1)}[reduction]
    with np.errstate(all="ignore"):
        expected = reference(x.data, axis=axis, keepdims=keepdims)
        out = fn(x)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    if reduction == "var" and not np.all(np.isfinite(expected)):
        return  # a single element has no variance (NaN), as in PyTorch
    assert ta.gradcheck(fn, [x])
