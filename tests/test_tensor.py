"""Tensor construction, dtypes, operators and the small methods around them."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import Tensor


def test_numpy_input_keeps_dtype_and_is_not_copied() -> None:
    a = np.ones((2, 3))
    t = Tensor(a)
    assert t.dtype == np.float64 and t.data is a and t.numpy() is a
    assert Tensor(np.ones(2, dtype=np.float32)).dtype == np.float32


def test_python_data_becomes_float32() -> None:
    assert Tensor([[1.0, 2.0]]).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float32
    assert Tensor(3.0).dtype == np.float32 and Tensor(3.0).shape == ()
    assert Tensor([True, False]).dtype == np.bool_


def test_integer_and_bool_arrays_are_allowed_as_data() -> None:
    assert Tensor(np.arange(3)).dtype == np.int64
    assert Tensor(np.array([True])).dtype == np.bool_


def test_properties() -> None:
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.numel() == 6 and len(x) == 2
    assert x.size() == (2, 3) and x.size(1) == 3 and x.dim() == 2
    assert x.T.shape == (3, 2)
    assert x.requires_grad and x.grad is None
    assert Tensor(np.array([4.0])).item() == 4.0
    with pytest.raises(RuntimeError, match=r"\(2, 3\)"):
        x.item()
    d = x.detach()
    assert d.data is x.data and not d.requires_grad
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=mul" in repr(x * 2.0)


def test_reflected_operators_and_scalars_keep_float32() -> None:
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    for y in (2 * x, 1 - x, 3.0 / x, 2.0**x, x**2, -x, x + 1, x - 1, x / 2,
              np.ones(2, dtype=np.float32) * x, x * np.float64(2.5), x + Tensor(2.0).double()):
        assert y.dtype == np.float32 and isinstance(y, Tensor)
    with pytest.raises(TypeError, match="list"):
        x + [1.0, 2.0]  # as PyTorch: wrap it with ta.tensor()
    np.testing.assert_allclose((1 - x).data, [0.0, -1.0])
    np.testing.assert_allclose((3.0 / x).data, [3.0, 1.5])
    np.testing.assert_allclose((2.0**x).data, [2.0, 4.0])


def test_numpy_array_on_the_left_gives_a_tensor() -> None:
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    y = np.eye(2) @ x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 2)))


def test_comparisons_return_boolean_tensors() -> None:
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    for result, expected in [(x > 2, [False, False, True]), (x >= 2, [False, True, True]),
                             (x < 2, [True, False, False]), (x <= 2, [True, True, False]),
                             (x == 2, [False, True, False]), (x != 2, [True, False, True]),
                             (x == Tensor(np.array([1.0, 0, 3])), [True, False, True])]:
        assert result.dtype == np.bool_ and not result.requires_grad
        np.testing.assert_array_equal(result.data, expected)


def test_tensor_is_hashable_by_identity() -> None:
    a, b = Tensor(np.ones(1)), Tensor(np.ones(1))
    assert len({a, b}) == 2


def test_repeated_integer_indices_accumulate() -> None:
    x = Tensor(np.arange(4.0), requires_grad=True)
    x[np.array([1, 1, 3, 1])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 3.0, 0.0, 1.0])


def test_integer_tensor_index() -> None:
    w = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    idx = Tensor(np.array([[2, 0], [2, 2]]))
    out = w[idx]
    assert out.shape == (2, 2, 2)
    out.sum().backward()
    np.testing.assert_array_equal(w.grad, [[1, 1], [0, 0], [3, 3]])


def test_values_match_numpy() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4))
    x = Tensor(a)
    np.testing.assert_allclose(x.sum(axis=1).data, a.sum(axis=1))
    np.testing.assert_allclose(x.mean(axis=(0, 1)).data, a.mean())
    np.testing.assert_allclose(x.amax(dim=0).data, a.max(axis=0))
    np.testing.assert_allclose(x.max(dim=0).values.data, a.max(axis=0))
    np.testing.assert_array_equal(x.max(0).indices.data, a.argmax(axis=0))
    np.testing.assert_allclose(x.var().data, a.var(ddof=1))
    np.testing.assert_allclose(x.var(axis=1, correction=0).data, a.var(axis=1))
    np.testing.assert_allclose(x.permute(1, 0).data, a.T)
    np.testing.assert_allclose(x.reshape(2, 6).data, a.reshape(2, 6))
    np.testing.assert_allclose(x.sigmoid().data, 1 / (1 + np.exp(-a)))
    np.testing.assert_allclose(ta.concat([x, x], axis=1).data, np.concatenate([a, a], 1))
    np.testing.assert_allclose(ta.stack([x, x], axis=1).data, np.stack([a, a], 1))
    np.testing.assert_allclose(x.masked_fill(a > 0, 0.0).data, np.minimum(a, 0))


def test_max_shares_gradient_between_ties() -> None:
    x = Tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 0.5])


def test_var_of_one_element_is_nan_like_pytorch() -> None:
    assert np.isnan(Tensor(np.array([1.0])).var().item())


def test_astype_round_trip_and_integer_cast() -> None:
    x = Tensor(np.array([1.5, 2.5], dtype=np.float32), requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, [3.0, 5.0])
    i = x.astype(np.int64)
    assert i.dtype == np.int64 and not i.requires_grad
