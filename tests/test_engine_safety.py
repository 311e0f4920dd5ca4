"""The engine's safety rules, as PyTorch's: gradients that never alias, in-place changes
caught by version counters, graphs freed after backward, truth values, and the edge cases
(0-d, empty, powers at zero, signed zeros) where numbers used to come out wrong."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import Tensor, optim


def leaf(values, dtype=np.float64) -> Tensor:
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


# ---- aliasing ----
def test_an_intermediate_shared_by_a_leaf_and_a_sum_is_not_added_into() -> None:
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    p = a * 1.0
    n = b + p
    (p.reshape(2) + (n + n)).sum().backward()
    np.testing.assert_array_equal(b.grad, [2.0, 2.0])
    np.testing.assert_array_equal(a.grad, [3.0, 3.0])


def test_heavy_fan_out_of_an_exp() -> None:
    x = leaf([0.5, -1.0, 2.0])
    a = x.exp()
    b = a + a
    c = b + a
    d = c + b + a
    (d * x + d).sum().backward()
    # d = 6 e^x, so d/dx sum(d x + d) = 6 e^x (x + 2)
    np.testing.assert_allclose(x.grad, 6 * np.exp(x.data) * (x.data + 2), rtol=1e-12)


def test_zero_dim_gradients_are_added_not_rebound() -> None:
    x = leaf([1.0, 2.0, 3.0])
    s = x.sum()
    (x * s + x * s + x * s).sum().backward()
    np.testing.assert_array_equal(x.grad, [36.0, 36.0, 36.0])  # 3 * 2 * sum(x)


def test_leaf_gradients_never_alias_the_seed_or_each_other() -> None:
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    seed = np.array([1.0, 1.0])
    (x + y).backward(seed)
    assert not np.shares_memory(x.grad, y.grad)
    assert not np.shares_memory(x.grad, seed)
    x.grad += 1  # the user's gradient is theirs to change
    np.testing.assert_array_equal(y.grad, [1.0, 1.0])
    np.testing.assert_array_equal(seed, [1.0, 1.0])


def test_a_leaf_that_is_the_root_gets_a_copy_of_the_seed() -> None:
    x = leaf([1.0, 2.0])
    seed = np.array([5.0, 6.0])
    x.backward(seed)
    seed[0] = 0.0
    np.testing.assert_array_equal(x.grad, [5.0, 6.0])


def test_results_are_arrays_even_for_zero_dim() -> None:
    x = leaf([1.0, 2.0])
    total = (x * x).sum()
    assert type(total.data) is np.ndarray and total.data.shape == ()


# ---- graphs are freed ----
def test_a_second_backward_through_a_freed_graph_raises() -> None:
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])  # not doubled


def test_retain_graph_keeps_it_and_gradients_accumulate() -> None:
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])
    with pytest.raises(RuntimeError, match="freed"):
        y.backward()


def test_backward_through_a_part_freed_by_another_loss_raises() -> None:
    x = leaf([1.0, 2.0])
    h = x.exp()
    h.sum().backward()
    with pytest.raises(RuntimeError, match="'exp'.*freed"):
        (h * 2.0).sum().backward()


def test_freeing_drops_saved_arrays_and_edges() -> None:
    x = leaf(np.ones(4))
    y = (x.exp() * x).sum()
    op = y._ctx.inputs[0]._ctx
    y.backward()
    assert op.inputs is None and not hasattr(op, "a")


# ---- in-place changes ----
def test_an_optimizer_step_between_forward_and_backward_is_caught() -> None:
    x = Tensor(np.array([1.0, 2.0, 3.0]))
    w = leaf([1.0, 1.0, 1.0])
    loss = (x * w).sum()
    w.grad = np.ones(3)
    optim.SGD([w], lr=0.5).step()
    with pytest.raises(RuntimeError, match=r"modified by an in-place operation.*'mul'"):
        loss.backward()


def test_an_in_place_change_of_a_saved_input_is_caught() -> None:
    w = leaf([1.0, 2.0])
    x = Tensor(np.array([3.0, 4.0]))
    loss = (x * w).sum()
    x.add_(1.0)
    with pytest.raises(RuntimeError, match=r"input 0 of 'mul' of shape \(2,\)"):
        loss.backward()


def test_item_assignment_bumps_the_version_and_is_caught() -> None:
    w = leaf([1.0, 2.0])
    x = Tensor(np.array([3.0, 4.0]))
    loss = (x * w).sum()
    x[0] = 10.0
    assert x._version == 1
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()


def test_a_view_shares_the_version_counter() -> None:
    w = leaf([1.0, 2.0, 3.0, 4.0])
    x = Tensor(np.arange(4.0))
    loss = (x * w).sum()
    x.reshape(2, 2)[0].zero_()  # through two views: x changes
    np.testing.assert_array_equal(x.data, [0.0, 0.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()


def test_an_in_place_change_of_an_unsaved_input_is_fine() -> None:
    w = leaf([1.0, 2.0])
    x = Tensor(np.array([3.0, 4.0]))
    loss = (x + w).sum()  # add saves nothing, as in PyTorch
    x.mul_(2.0)
    loss.backward()
    np.testing.assert_array_equal(w.grad, [1.0, 1.0])


def test_an_in_place_change_of_a_saved_output_is_caught() -> None:
    x = leaf([0.5, 1.0])
    y = x.exp()
    loss = (y + 1.0).sum()  # add saves nothing: exp's saved output is what changed
    with ta.no_grad():
        y.mul_(2.0)
    with pytest.raises(RuntimeError, match="its output"):
        loss.backward()


def test_in_place_on_a_leaf_that_requires_grad_raises_outside_no_grad() -> None:
    w = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w += 1.0
    with pytest.raises(RuntimeError, match="leaf"):
        w[0] = 3.0
    with ta.no_grad():
        w -= 0.5
        w[1] = 7.0
    np.testing.assert_array_equal(w.data, [0.5, 7.0])
    assert w._version == 2


def test_in_place_result_must_fit_the_dtype_and_shape() -> None:
    n = Tensor(np.arange(3))
    with pytest.raises(RuntimeError, match="float32 can't be cast to the dtype int64"):
        n += 0.5
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\).*\(3,\)"):
        n.add_(Tensor(np.ones((2, 3), dtype=np.int64)))


# ---- truth values and numbers ----
def test_truth_value_is_the_single_element() -> None:
    assert not bool(Tensor([-1.0]) > 0)
    assert bool(Tensor([2.0]) > 0)
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(Tensor([1.0, 2.0]))
    assert Tensor([1.0]) not in [Tensor([2.0])]
    loss = (leaf([1.5]) * 2.0).sum()
    assert f"{loss:.2f}" == "3.00" and float(loss) == 3.0 and int(loss) == 3


# ---- constants ----
def test_signed_zero_constants_keep_their_sign() -> None:
    x = Tensor(np.array([1.0]))
    assert not np.signbit((x * 0.0).data[0])
    assert np.signbit((x * -0.0).data[0])


def test_cached_constants_cannot_be_changed() -> None:
    x = leaf([1.0, 2.0])
    y = x * 2.0
    constant = y._ctx.inputs[1]
    with pytest.raises(RuntimeError, match="memory"):
        constant.fill_(5.0)
    np.testing.assert_array_equal((x * 2.0).data, [2.0, 4.0])


# ---- powers at zero ----
def test_power_gradients_at_zero_match_pytorch() -> None:
    x = leaf([0.0, 1.0, 2.0])
    (x ** 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])
    base, exponent = leaf([0.0, 0.0]), leaf([0.0, 2.0])
    (base ** exponent).sum().backward()
    np.testing.assert_array_equal(base.grad, [0.0, 0.0])
    np.testing.assert_array_equal(exponent.grad, [0.0, 0.0])


# ---- empty and 0-d tensors ----
def test_mean_and_var_of_an_empty_tensor_are_nan() -> None:
    empty = Tensor(np.zeros(0))
    with np.errstate(invalid="ignore"):
        assert np.isnan(empty.mean().item()) and np.isnan(empty.var().item())


@pytest.mark.parametrize("method", ["softmax", "log_softmax"])
def test_softmax_over_an_empty_dim_is_empty(method: str) -> None:
    x = leaf(np.zeros((3, 0)))
    out = getattr(x, method)(-1)
    out.sum().backward()
    assert out.shape == (3, 0) and x.grad.shape == (3, 0)


def test_matmul_with_an_empty_inner_dim_gives_zeros() -> None:
    a, b = leaf(np.zeros((5, 5, 0))), leaf(np.zeros((0, 5)))
    out = a @ b
    out.sum().backward()
    np.testing.assert_array_equal(out.data, np.zeros((5, 5, 5)))
    assert a.grad.shape == (5, 5, 0) and b.grad.shape == (0, 5)


def test_reducing_a_zero_dim_tensor_over_dim_0() -> None:
    x = leaf(3.0)
    assert x.mean(dim=0).item() == 3.0 and x.sum(-1).item() == 3.0
    with pytest.raises(ValueError, match="0-d"):
        x.sum(dim=1)


# ---- gradcheck leaves its inputs alone ----
def test_gradcheck_restores_an_input_when_fn_raises() -> None:
    x = leaf([1.0, 2.0, 3.0])
    before = x.data.copy()
    calls = []

    def fn(t: Tensor) -> Tensor:
        calls.append(1)
        if len(calls) > 2:
            raise ZeroDivisionError("boom")
        return (t * t).sum()

    with pytest.raises(ZeroDivisionError):
        ta.gradcheck(fn, [x])
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None


# ---- grad mode ----
def test_grad_mode_contexts_and_decorators_as_pytorch() -> None:
    x = leaf([1.0])

    @ta.no_grad()
    def frozen() -> Tensor:
        return x * 2.0

    @ta.set_grad_enabled(False)
    def also_frozen() -> Tensor:
        return x * 2.0

    assert ta.is_grad_enabled()  # decorating changed nothing outside the call
    assert not frozen().requires_grad and not also_frozen().requires_grad
    with ta.no_grad():
        with ta.enable_grad():
            assert (x * 2.0).requires_grad
        assert not (x * 2.0).requires_grad
    ta.set_grad_enabled(False)
    assert not ta.is_grad_enabled()
    ta.set_grad_enabled(True)
    with ta.set_grad_enabled(False):
        assert not ta.is_grad_enabled()
    assert ta.is_grad_enabled()


def test_writing_a_tensor_that_requires_grad_in_place_raises_instead_of_losing_it() -> None:
    w = leaf([1.0, 2.0])
    out = Tensor(np.zeros(2))
    with pytest.raises(RuntimeError, match=r"setitem.*lose its gradient.*stack"):
        out[:] = w * 2.0
    with pytest.raises(RuntimeError, match="add_.*lose its gradient"):
        out += w
    with pytest.raises(RuntimeError, match="copy_"):
        out.copy_(w)
    np.testing.assert_array_equal(out.data, [0.0, 0.0])
    with ta.no_grad():  # no graph wanted: the values are simply written
        out[:] = w * 2.0
    np.testing.assert_array_equal(out.data, [2.0, 4.0])


def test_item_assignment_with_mask_and_index_tensors() -> None:
    x = Tensor(np.array([[1.0, -2.0], [-3.0, 4.0], [5.0, 6.0]]))
    x[x > 0] = 0.0
    np.testing.assert_array_equal(x.data, [[0.0, -2.0], [-3.0, 0.0], [0.0, 0.0]])
    x[ta.tensor([0, 2])] = -1.0
    np.testing.assert_array_equal(x.data[[0, 2]], -np.ones((2, 2)))
    assert x._version == 2


def test_retain_grad_keeps_an_intermediate_gradient_as_pytorch() -> None:
    x = leaf([1.0, 2.0])
    y = x * 3.0
    y.retain_grad()
    z = (y * y).sum()
    z.backward(retain_graph=True)
    np.testing.assert_array_equal(y.grad, [6.0, 12.0])  # d z / d y = 2 y
    z.backward()
    np.testing.assert_array_equal(y.grad, [12.0, 24.0])  # accumulated, as PyTorch
    assert y.retains_grad and not x.retains_grad
    assert (x * 2.0).grad is None  # others keep none
