"""The engine: graph recording, iterative backward, accumulation, no_grad, seeds."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import engine
from tinygrad_attn.tensor import Tensor


def test_chain_of_100k_ops_needs_no_recursion() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_square_via_mul_records_two_edges_and_accumulates() -> None:
    x = Tensor(np.array([3.0, -2.0]), requires_grad=True)
    y = x * x
    assert y._ctx.inputs == (x, x)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [6.0, -4.0])


def test_diamond() -> None:
    # x -> a = 2x, b = x^2 -> out = a * b = 2x^3; d/dx = 6x^2
    x = Tensor(np.array([1.5, -0.5, 2.0]), requires_grad=True)
    a = x * 2.0
    b = x * x
    (a * b).sum().backward()
    np.testing.assert_allclose(x.grad, 6 * x.data**2)


def test_shared_intermediate_used_three_times() -> None:
    x = Tensor(np.array([0.5, 1.0]), requires_grad=True)
    h = x.exp()
    out = h + h * h + h.sum()
    out.sum().backward()
    e = np.exp(x.data)
    np.testing.assert_allclose(x.grad, e * (1 + 2 * e + 2))


def test_gradients_accumulate_across_backward_calls() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0 + 2.0, 3.0 + 4.0])
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_leaf_grads_never_alias_each_other() -> None:
    # add passes its gradient through unchanged to both inputs: each leaf must own its
    # own array, or accumulating into one would change the other.
    a = Tensor(np.zeros(3), requires_grad=True)
    b = Tensor(np.zeros(3), requires_grad=True)
    (a + b).sum().backward()
    assert a.grad is not b.grad
    (a * 2.0).sum().backward()
    np.testing.assert_array_equal(a.grad, [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(b.grad, [1.0, 1.0, 1.0])


def test_seed_is_not_aliased_by_grad() -> None:
    x = Tensor(np.zeros(2), requires_grad=True)
    seed = np.array([1.0, 2.0])
    (x + 0.0).backward(seed)
    x.grad += 1
    np.testing.assert_array_equal(seed, [1.0, 2.0])


def test_graph_is_left_in_place_after_backward_with_retain_graph() -> None:
    x = Tensor(np.ones(3), requires_grad=True, name="x")
    loss = (x.exp() * 2.0).sum()
    loss.backward(retain_graph=True)
    assert loss._ctx.name == "sum"
    mul = loss._ctx.inputs[0]._ctx
    assert mul.name == "mul"
    exp_out = mul.inputs[0]
    assert exp_out._ctx.name == "exp" and exp_out.shape == (3,)
    assert exp_out._ctx.inputs[0] is x and x.name == "x"
    assert [t.shape for t in engine.toposort(loss)] == [(3,), (3,), ()]


def test_no_grad_records_nothing() -> None:
    x = Tensor(np.ones(2), requires_grad=True)
    with ta.no_grad():
        assert not ta.is_grad_enabled()
        y = x * 2.0 + 1.0
    assert ta.is_grad_enabled()
    assert y._ctx is None and not y.requires_grad
    z = x * 2.0
    assert z.requires_grad and z._ctx is not None


def test_no_grad_restores_state_after_an_error() -> None:
    with pytest.raises(RuntimeError):
        with ta.no_grad():
            raise RuntimeError("boom")
    assert ta.is_grad_enabled()


def test_constants_record_no_gradient() -> None:
    x = Tensor(np.ones(2), requires_grad=True)
    c = Tensor(np.full(2, 3.0))
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_broadcast_gradient_is_summed_to_the_operand_shape() -> None:
    a = Tensor(np.ones((2, 3, 4)), requires_grad=True)
    b = Tensor(np.ones((3, 1)), requires_grad=True)
    (a * b).sum().backward()
    assert b.grad.shape == (3, 1)
    np.testing.assert_array_equal(b.grad, np.full((3, 1), 8.0))


def test_non_scalar_backward_needs_a_seed() -> None:
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2.0
    with pytest.raises(RuntimeError, match=r"\(2, 3\)"):
        y.backward()
    with pytest.raises(RuntimeError, match=r"\(3,\).*\(2, 3\)"):
        y.backward(np.ones(3))
    y.backward(np.ones((2, 3)))


def test_one_element_output_is_seeded_with_one() -> None:
    x = Tensor(np.array([2.0]), requires_grad=True)
    (x * x).backward()
    np.testing.assert_array_equal(x.grad, [4.0])


def test_backward_of_a_tensor_without_grad_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(())).backward()


def test_integer_tensor_cannot_require_grad() -> None:
    with pytest.raises(RuntimeError, match=r"int64.*\(3,\)"):
        Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="bool"):
        Tensor(np.array([True]), requires_grad=True)
    t = Tensor(np.arange(3))
    with pytest.raises(RuntimeError):
        t.requires_grad_()


def test_backward_on_a_leaf_sets_its_grad() -> None:
    x = Tensor(np.ones(2), requires_grad=True)
    x.backward(np.array([2.0, 3.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 3.0])


def test_ops_record_their_module_scope() -> None:
    x = Tensor(np.ones(2), requires_grad=True)
    with engine.scope("layers.0.norm1"):
        y = x * 2.0
    z = y + 1.0
    assert y._ctx.scope == "layers.0.norm1" and z._ctx.scope == ""
