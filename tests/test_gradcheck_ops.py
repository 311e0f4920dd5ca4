"""Every op, gradient-checked in float64 on the shared sample registry."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import engine
from tinygrad_attn.engine import Op
from tinygrad_attn.gradcheck import compare_gradients
from tinygrad_attn.ops.samples import SAMPLES
from tinygrad_attn.report import main as report_main

CASES = [(op, c) for op, cases in SAMPLES.items() for c in cases]


def test_every_registered_op_has_samples() -> None:
    missing = sorted(name for name in engine.OPS if name not in SAMPLES)
    assert not missing, f"ops without gradient-check samples: {missing}"


@pytest.mark.parametrize("op", sorted(SAMPLES))
def test_at_least_three_cases(op: str) -> None:
    assert len(SAMPLES[op]) >= 3


@pytest.mark.parametrize("op,case", CASES, ids=[f"{o}[{c.label}]" for o, c in CASES])
def test_gradcheck(op: str, case) -> None:
    assert ta.gradcheck(case.fn, case.inputs(seed=1))


@pytest.mark.parametrize("op,case", CASES, ids=[f"{o}[{c.label}]" for o, c in CASES])
def test_float32_stays_float32(op: str, case) -> None:
    """Outputs and gradients of float32 work are float32: no silent upcast."""
    inputs = [ta.Tensor(t.data.astype(np.float32), requires_grad=True)
              if isinstance(t, ta.Tensor) and t.dtype.kind == "f" else t
              for t in case.inputs()]
    out = case.fn(*inputs)
    if op != "cast":
        assert out.dtype == np.float32, f"{op} output is {out.dtype}"
    out.backward(np.ones(out.shape, dtype=np.float32))
    for t in inputs:
        if isinstance(t, ta.Tensor) and t.requires_grad:
            assert t.grad is not None and t.grad.dtype == np.float32
            assert t.grad.shape == t.shape


def test_gradcheck_reports_a_wrong_backward() -> None:
    class WrongSquare(Op):
        name = ""  # not registered: a deliberately broken op

        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, g):
            return (g * self.x * 3,)  # should be 2x

    x = ta.Tensor(np.array([[1.0, 2.0], [3.0, -1.0]]), requires_grad=True)
    with pytest.raises(ta.GradcheckError) as err:
        ta.gradcheck(lambda t: WrongSquare.apply(t), [x])
    message = str(err.value)
    assert "input 0 (2, 2)" in message and "max abs error" in message
    assert "MISMATCH" in message
    # ... and it names the recorded op whose own backward is wrong
    assert "ops whose backward disagrees" in message and "'WrongSquare'" in message
    reports = compare_gradients(lambda t: WrongSquare.apply(t), [x])
    # analytic 3x vs numerical 2x at the largest |x| with a random cotangent
    assert reports[0].max_abs_error > 0.5 and not reports[0].passed


def test_gradcheck_leaves_inputs_and_grads_untouched() -> None:
    data = np.array([0.5, -1.5, 2.0])
    x = ta.Tensor(data.copy(), requires_grad=True)
    x.grad = np.array([7.0, 7.0, 7.0])
    assert ta.gradcheck(lambda t: (t * t).sum(), [x])
    np.testing.assert_array_equal(x.data, data)
    np.testing.assert_array_equal(x.grad, [7.0, 7.0, 7.0])


def test_gradcheck_checks_float32_inputs_in_float64() -> None:
    x = ta.Tensor(np.array([0.3, -0.7], dtype=np.float32), requires_grad=True)
    assert ta.gradcheck(lambda t: (t.exp() * t).sum(), [x])
    assert x.dtype == np.float32


def test_gradcheck_needs_an_input_with_grad() -> None:
    with pytest.raises(ValueError, match="no input requires grad"):
        ta.gradcheck(lambda t: t * 2, [ta.Tensor(np.ones(2))])


def test_report_cli_passes_and_prints_a_row_per_op(capsys) -> None:
    assert report_main(["softmax", "matmul"]) == 0
    out = capsys.readouterr().out
    assert "softmax" in out and "matmul" in out and "2 of 2 ops pass" in out


def test_report_cli_unknown_op(capsys) -> None:
    assert report_main(["nope"]) == 2
