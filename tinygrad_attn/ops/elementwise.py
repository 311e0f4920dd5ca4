"""Elementwise ops. Backward passes see gradients at the broadcast output's shape; the
engine sums them back to each input's shape."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import erf

from tinygrad_attn import parallel
from tinygrad_attn.engine import Op

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]

# Large arrays are computed by parts of their rows on every core (parallel.map_rows);
# small ones take the plain NumPy call. The size test is written out in the binary ops:
# it is all the pool costs a small tensor.


# ---- binary arithmetic ----
class Add(Op):
    name = "add"
    saves_inputs = False

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.size < parallel.MIN_PARALLEL > b.size:
            return a + b
        return parallel.map_rows(np.add, a, b)

    def backward(self, g: np.ndarray) -> Grads:
        return g, g


class ResidualAdd(Add):
    """``skip + branch``: an add that the graph marks as a residual connection.

    The maths is the add's; the name lets a picture draw the skip edge (input 0) apart
    from the branch (input 1) and show how the gradient splits between them.
    """

    name = "residual_add"


def add(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise sum with broadcasting."""
    return a + b


def residual(skip: Tensor, branch: Tensor) -> Tensor:
    """``skip + branch``, recorded as a residual connection."""
    return ResidualAdd.apply(skip, branch)


class Sub(Op):
    name = "sub"
    saves_inputs = False

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.size < parallel.MIN_PARALLEL > b.size:
            return a - b
        return parallel.map_rows(np.subtract, a, b)

    def backward(self, g: np.ndarray) -> Grads:
        return g, (parallel.map_rows(np.negative, g) if self.needs_input_grad[1] else None)


class Mul(Op):
    name = "mul"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.a, self.b = a, b
        if a.size < parallel.MIN_PARALLEL > b.size:
            return a * b
        return parallel.map_rows(np.multiply, a, b)

    def backward(self, g: np.ndarray) -> Grads:
        need_a, need_b = self.needs_input_grad
        if g.size < parallel.MIN_PARALLEL:
            return (g * self.b if need_a else None), (g * self.a if need_b else None)
        return (parallel.map_rows(np.multiply, g, self.b) if need_a else None,
                parallel.map_rows(np.multiply, g, self.a) if need_b else None)


class Div(Op):
    name = "div"
    saves_output = True

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.b = b
        self.out = parallel.map_rows(np.true_divide, a, b)
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        need_a, need_b = self.needs_input_grad
        grad_a = g / self.b if need_a else None
        # d(a/b)/db = -a/b^2 = -out/b
        grad_b = -(g * self.out) / self.b if need_b else None
        return grad_a, grad_b


class Pow(Op):
    name = "pow"
    saves_output = True

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        need_a, need_b = self.needs_input_grad
        a, b = self.a, self.b
        grad_a = grad_b = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if need_a:
                # d a^b/da = b a^(b-1), and 0 where b == 0 (a^0 is constant, also at a = 0)
                grad_a = np.where(b == 0, 0, g * b * a ** (b - 1))
            if need_b:
                # d a^b/db = a^b ln a, and 0 at a = 0 with b >= 0 (0^b is constant there)
                grad_b = np.where((a == 0) & (b >= 0), 0, g * self.out * np.log(a))
        return grad_a, grad_b


# ---- unary maths ----
class Neg(Op):
    name = "neg"
    saves_inputs = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        return parallel.map_rows(np.negative, x)

    def backward(self, g: np.ndarray) -> Grads:
        return (parallel.map_rows(np.negative, g),)


class Exp(Op):
    name = "exp"
    saves_inputs = False
    saves_output = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = parallel.map_rows(np.exp, x)
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        return (parallel.map_rows(np.multiply, g, self.out),)


class Log(Op):
    name = "log"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.log(x)

    def backward(self, g: np.ndarray) -> Grads:
        return (g / self.x,)


class Sqrt(Op):
    name = "sqrt"
    saves_inputs = False
    saves_output = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.sqrt(x)
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        return (g / (2 * self.out),)


def _tanh_grad(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g * (1 - y * y)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.tanh(0.5 * x) + 0.5


def _sigmoid_grad(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g * y * (1 - y)


class Tanh(Op):
    name = "tanh"
    saves_inputs = False
    saves_output = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = parallel.map_rows(np.tanh, x)
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        return (parallel.map_rows(_tanh_grad, g, self.out),)


class Sigmoid(Op):
    name = "sigmoid"
    saves_inputs = False
    saves_output = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        # 1/(1+e^-x) overflows for large negative x; the tanh form never does.
        self.out = parallel.map_rows(_sigmoid, x)
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        return (parallel.map_rows(_sigmoid_grad, g, self.out),)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def _relu_grad(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g * (y > 0)


class Relu(Op):
    name = "relu"
    saves_inputs = False
    saves_output = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = parallel.map_rows(_relu, x)
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        return (parallel.map_rows(_relu_grad, g, self.out),)


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class Gelu(Op):
    """x * Phi(x): PyTorch's exact erf form, or its tanh approximation."""

    name = "gelu"

    def forward(self, x: np.ndarray, approximate: str = "none") -> np.ndarray:
        self.x, self.approximate = x, approximate
        if approximate == "tanh":
            self.t = parallel.map_rows(_gelu_tanh, x)
            return parallel.map_rows(_gelu_tanh_out, x, self.t)
        self.cdf = parallel.map_rows(_gelu_cdf, x)
        return parallel.map_rows(np.multiply, x, self.cdf)

    def backward(self, g: np.ndarray) -> Grads:
        if self.approximate == "tanh":
            return (parallel.map_rows(_gelu_tanh_grad, g, self.x, self.t),)
        return (parallel.map_rows(_gelu_grad, g, self.x, self.cdf),)


def _gelu_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + erf(x * _SQRT_HALF))


def _gelu_grad(g: np.ndarray, x: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    # d/dx x Phi(x) = Phi(x) + x phi(x)
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
    return g * (cdf + x * pdf)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))


def _gelu_tanh_out(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + t)


def _gelu_tanh_grad(g: np.ndarray, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    # d/dx 0.5x(1+t) = 0.5(1+t) + 0.5x(1-t^2) sqrt(2/pi)(1 + 3*0.044715 x^2)
    dt = (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
    return g * (0.5 * (1 + t) + 0.5 * x * dt)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x), Phi the standard normal CDF; ``approximate="tanh"`` uses the tanh
    formula. Shape: any -> same."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(x, approximate=approximate)


class Sin(Op):
    name = "sin"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.sin(x)

    def backward(self, g: np.ndarray) -> Grads:
        return (g * np.cos(self.x),)


class Cos(Op):
    name = "cos"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.cos(x)

    def backward(self, g: np.ndarray) -> Grads:
        return (-g * np.sin(self.x),)


class Abs(Op):
    name = "abs"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        return np.abs(x)

    def backward(self, g: np.ndarray) -> Grads:
        return (g * np.sign(self.x),)  # sign(0) = 0: PyTorch's subgradient


class Clamp(Op):
    """``x`` limited to [min, max] (either bound may be None)."""

    name = "clamp"

    def forward(self, x: np.ndarray, min: float | None, max: float | None) -> np.ndarray:  # noqa: A002
        out = np.clip(x, min, max)
        # PyTorch passes the gradient where min <= x <= max, bounds included.
        self.inside = np.ones(x.shape, dtype=bool) if min is None else x >= min
        if max is not None:
            self.inside &= x <= max
        return out.astype(x.dtype, copy=False)

    def backward(self, g: np.ndarray) -> Grads:
        return (g * self.inside,)


class Maximum(Op):
    """Elementwise maximum; where both are equal each gets half the gradient (PyTorch)."""

    name = "maximum"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.a, self.b = a, b
        return np.maximum(a, b)

    def backward(self, g: np.ndarray) -> Grads:
        return _split_between(g, self.a > self.b, self.a == self.b, self.needs_input_grad)


class Minimum(Op):
    name = "minimum"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.a, self.b = a, b
        return np.minimum(a, b)

    def backward(self, g: np.ndarray) -> Grads:
        return _split_between(g, self.a < self.b, self.a == self.b, self.needs_input_grad)


def _split_between(g: np.ndarray, a_wins: np.ndarray, tie: np.ndarray,
                   needs: tuple[bool, ...]) -> Grads:
    share_a = a_wins + 0.5 * tie  # 1 where a was chosen, 1/2 on ties, else 0
    grad_a = g * share_a.astype(g.dtype, copy=False) if needs[0] else None
    grad_b = g * (1 - share_a).astype(g.dtype, copy=False) if needs[1] else None
    return grad_a, grad_b


class Where(Op):
    """``a`` where ``condition`` is True, else ``b`` (all three broadcast together)."""

    name = "where"
    saves_inputs = False

    def forward(self, a: np.ndarray, b: np.ndarray, condition: np.ndarray) -> np.ndarray:
        if condition.dtype != np.bool_:
            raise TypeError(f"where: condition must be boolean, got {condition.dtype}")
        self.condition = condition
        return np.where(condition, a, b)

    def backward(self, g: np.ndarray) -> Grads:
        need_a, need_b = self.needs_input_grad
        zero = np.zeros((), dtype=g.dtype)
        return (np.where(self.condition, g, zero) if need_a else None,
                np.where(self.condition, zero, g) if need_b else None)


class Clone(Op):
    """A copy that stays in the graph (the gradient passes through unchanged)."""

    name = "clone"
    saves_inputs = False

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.copy()

    def backward(self, g: np.ndarray) -> Grads:
        return (g,)


class Cast(Op):
    name = "cast"
    saves_inputs = False

    def forward(self, x: np.ndarray, dtype: Any) -> np.ndarray:
        self.in_dtype = x.dtype
        return x.astype(dtype, copy=False)

    def backward(self, g: np.ndarray) -> Grads:
        return (g.astype(self.in_dtype, copy=False),)
