"""Gradient checking: central finite differences in float64 against backward()."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygrad_attn import random
from tinygrad_attn.anomaly import detect_anomaly, where_created
from tinygrad_attn.engine import Op, no_grad, toposort
from tinygrad_attn.tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic gradient of some input disagrees with finite differences."""


@dataclass
class InputReport:
    """How one input's analytic gradient compares with the numerical one."""

    position: int
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    analytic: float
    numerical: float
    passed: bool

    def describe(self) -> str:
        verdict = "ok" if self.passed else "MISMATCH"
        return (f"input {self.position} {self.shape}: max abs error {self.max_abs_error:.3g}, "
                f"max rel error {self.max_rel_error:.3g} at index {self.worst_index} "
                f"(analytic {self.analytic:.6g}, numerical {self.numerical:.6g}) [{verdict}]")


def _outputs(result: Any) -> list[Tensor]:
    items = result if isinstance(result, (tuple, list)) else (result,)
    return [t for t in items if isinstance(t, Tensor) and t.dtype.kind == "f"]


def to_float64(t: Any) -> Any:
    """float64 tensors are checked in place; other float tensors as float64 copies."""
    if isinstance(t, Tensor) and t.dtype.kind == "f" and t.dtype != np.float64:
        return Tensor(t.data.astype(np.float64), requires_grad=t.requires_grad, name=t.name)
    return t


def compare_gradients(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6,
                      atol: float = 1e-5, rtol: float = 1e-3,
                      seed: int = 0) -> list[InputReport]:
    """Per input that requires grad, the largest disagreement between the analytic
    gradient and central finite differences of a random projection of the outputs."""
    inputs = [to_float64(t) for t in inputs]
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    saved_grads = [inputs[i].grad for i in checked]
    rng = np.random.default_rng(seed)
    outputs = _outputs(fn(*inputs))
    if not outputs:
        raise ValueError("gradcheck: fn returned no floating-point tensor")
    # A random cotangent per output turns any output into a scalar objective whose
    # gradient is the vector-Jacobian product we check.
    cotangents = [rng.standard_normal(o.shape) for o in outputs]

    def objective() -> float:
        with no_grad():
            outs = _outputs(fn(*inputs))
        return float(sum(np.sum(o.data * c) for o, c in zip(outs, cotangents)))

    try:
        for i in checked:
            inputs[i].grad = None
        for out, cotangent in zip(outputs, cotangents):
            if out.requires_grad:  # outputs may share a graph: keep it for the next one
                out.backward(cotangent, retain_graph=True)
        reports = []
        for position in checked:
            tensor = inputs[position]
            analytic = tensor.grad if tensor.grad is not None else np.zeros(tensor.shape)
            numerical = np.zeros(tensor.shape)
            data = tensor.data  # perturbed in place, element by element, then restored
            for index in np.ndindex(data.shape):
                original = data[index]
                try:
                    data[index] = original + eps
                    plus = objective()
                    data[index] = original - eps
                    minus = objective()
                finally:  # also when fn raises: the input is left exactly as it was
                    data[index] = original
                numerical[index] = (plus - minus) / (2 * eps)
            reports.append(_report(position, analytic, numerical, atol, rtol))
    finally:
        for i, grad in zip(checked, saved_grads):
            inputs[i].grad = grad
    return reports


def _report(position: int, analytic: np.ndarray, numerical: np.ndarray, atol: float,
            rtol: float) -> InputReport:
    abs_error = np.abs(analytic - numerical)
    rel_error = abs_error / np.maximum(np.maximum(np.abs(analytic), np.abs(numerical)), atol)
    worst = np.unravel_index(np.argmax(abs_error), abs_error.shape) if abs_error.size else ()
    worst = tuple(int(w) for w in worst)
    passed = bool(np.all(abs_error <= atol + rtol * np.abs(numerical)))
    return InputReport(position, analytic.shape, float(abs_error.max(initial=0.0)),
                       float(rel_error.max(initial=0.0)), worst,
                       float(analytic[worst]) if abs_error.size else 0.0,
                       float(numerical[worst]) if abs_error.size else 0.0, passed)


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """Check the analytic gradients of ``fn`` against central finite differences.

    Every input that requires grad is checked in float64 (float64 tensors are perturbed
    in place and restored; other float tensors are checked as float64 copies). ``fn``
    may return a tensor or a tuple of tensors. Returns True, or raises
    :class:`GradcheckError` listing, per input, the largest absolute and relative error
    and where it occurred, and which recorded op's own backward is to blame.
    """
    reports = compare_gradients(fn, inputs, eps=eps, atol=atol, rtol=rtol)
    if all(r.passed for r in reports):
        return True
    lines = "\n  ".join(r.describe() for r in reports)
    raise GradcheckError(f"gradcheck failed (atol={atol}, rtol={rtol}):\n  {lines}\n"
                         f"{_blame_ops(fn, inputs, eps, atol, rtol)}")


def _blame_ops(fn: Callable[..., Any], inputs: Sequence[Any], eps: float, atol: float,
               rtol: float) -> str:
    """Which recorded op's own backward disagrees with finite differences on the inputs
    it recorded: narrows a failing composite function down to one op."""
    culprits = [c for c in check_recorded_ops(fn, inputs, eps, atol, rtol) if not c.passed]
    if not culprits:
        return ("every recorded op passes on its own inputs: look at code that bypasses "
                "the ops (numpy on .data, say) or at points where fn is not differentiable")
    detail = "\n".join(c.describe() for c in culprits)
    return f"ops whose backward disagrees with finite differences:\n{detail}"


# ---- per-op checks: which recorded op is to blame ----
@dataclass
class OpCheck:
    """How one recorded op's backward compares with finite differences."""

    op: Op
    inputs: list[InputReport]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.inputs)

    def describe(self) -> str:
        scope = f" in {self.op.scope!r}" if self.op.scope else ""
        verdict = "ok" if self.passed else "MISMATCH"
        name = self.op.name or type(self.op).__name__
        lines = [f"op {name!r}{scope} [{verdict}]", where_created(self.op)]
        lines += [f"  {r.describe()}" for r in self.inputs if not r.passed]
        return "\n".join(lines)


def check_recorded_ops(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-6,
                       atol: float = 1e-5, rtol: float = 1e-3) -> list[OpCheck]:
    """Run ``fn`` once in float64, then gradient-check every op it recorded on that op's
    own recorded inputs. Returns one :class:`OpCheck` per op, inputs before outputs."""
    inputs = [to_float64(t) for t in inputs]
    with detect_anomaly():
        result = fn(*inputs)
    outputs = [t for t in (result if isinstance(result, (tuple, list)) else (result,))
               if isinstance(t, Tensor) and t._ctx is not None]
    seen: set[int] = set()
    checks = []
    for out in outputs:
        for node in toposort(out):
            op = node._ctx
            if id(op) in seen:
                continue
            seen.add(id(op))
            checks.append(_check_op(op, eps, atol, rtol))
    return checks


def _check_op(op: Op, eps: float, atol: float, rtol: float) -> OpCheck:
    params = op._anomaly_params
    leaves = [Tensor(t.data.astype(np.float64) if t.dtype.kind == "f" else t.data,
                     requires_grad=t.requires_grad) for t in op.inputs]
    saved = random.generator()

    def single(*xs: Tensor) -> Tensor:
        random.manual_seed(0)  # ops that draw random masks draw the same one every call
        return type(op).apply(*xs, **params)

    try:
        reports = compare_gradients(single, leaves, eps=eps, atol=atol, rtol=rtol)
    finally:
        random._generator = saved
    return OpCheck(op, reports)
