"""The gradient debugger: detect_anomaly and per-op gradient checks."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import engine, nn
from tinygrad_attn.anomaly import AnomalyError, detect_anomaly
from tinygrad_attn.engine import Op
from tinygrad_attn.gradcheck import check_recorded_ops, gradcheck


def test_nan_backward_names_the_op_shapes_and_user_line():
    x = ta.Tensor(np.array([1.0, 0.0, 2.0]), requires_grad=True)
    with detect_anomaly():
        y = x.sqrt().sum()  # the line the error must quote
        with pytest.raises(AnomalyError) as info, np.errstate(divide="ignore"):
            y.backward()
    message = str(info.value)
    assert "backward of 'sqrt'" in message and "input 0 (Inf)" in message
    assert "(3,) float64" in message
    assert "y = x.sqrt().sum()  # the line the error must quote" in message
    assert __file__ in message
    assert engine._anomaly_hooks is None


def test_without_the_block_backward_stays_silent():
    x = ta.Tensor(np.array([0.0]), requires_grad=True)
    with np.errstate(divide="ignore"):
        x.sqrt().sum().backward()
    assert np.isinf(x.grad[0])


def test_op_inside_a_module_reports_the_library_line_and_the_user_line():
    ta.manual_seed(0)
    norm = nn.LayerNorm(4)
    x = ta.Tensor(np.ones((2, 4)), requires_grad=True)
    with detect_anomaly():
        out = norm(x).sqrt()  # layer_norm of constant rows is 0: sqrt' is Inf
        with pytest.raises(AnomalyError) as info, np.errstate(divide="ignore",
                                                              invalid="ignore"):
            out.sum().backward()
    message = str(info.value)
    assert "'sqrt'" in message and "out = norm(x).sqrt()" in message


def test_finite_backward_passes_and_nonfinite_seed_is_named():
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with detect_anomaly():
        (x * x).sum().backward()
        y = x * 3.0
        with pytest.raises(AnomalyError, match="received a gradient holding NaN"):
            y.backward(np.array([np.nan, 1.0]))
    np.testing.assert_allclose(x.grad, [2.0, 4.0])


class _WrongSquare(Op):
    """x * x with a backward that forgets the factor 2 (not registered: no name)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return x * x

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * self.x,)


_WrongSquare.name = "wrong_square"


def test_gradcheck_names_the_recorded_op_whose_backward_is_wrong():
    def composite(a: ta.Tensor) -> ta.Tensor:
        return (_WrongSquare.apply(a.exp()) * 3.0).tanh()

    a = ta.Tensor(np.array([0.1, -0.2, 0.3]), requires_grad=True)
    with pytest.raises(ta.GradcheckError) as info:
        gradcheck(composite, [a])
    message = str(info.value)
    assert "op 'wrong_square' [MISMATCH]" in message
    assert "return (_WrongSquare.apply(a.exp()) * 3.0).tanh()" in message
    assert "'exp'" not in message and "'tanh'" not in message
    checks = check_recorded_ops(composite, [a])
    assert [c.op.name for c in checks] == ["exp", "wrong_square", "mul", "tanh"]
    assert [c.passed for c in checks] == [True, False, True, True]


def test_check_recorded_ops_passes_a_correct_encoder_layer():
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0).double()
    x = ta.Tensor(np.random.default_rng(0).standard_normal((1, 3, 4)), requires_grad=True)
    checks = check_recorded_ops(layer, [x])
    assert len(checks) > 10 and all(c.passed for c in checks)
    assert gradcheck(layer, [x]) is True
