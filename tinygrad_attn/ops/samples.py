"""Sample inputs for every op: the one registry that the gradient-check report
(``python -m tinygrad_attn gradcheck``) and the test suite both read.

A new op is not finished until it has an entry here; a test keeps every op in
``engine.OPS`` covered. Each op has at least three shape cases, broadcasting included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinygrad_attn.ops as F
from tinygrad_attn import random
from tinygrad_attn.tensor import Tensor


@dataclass
class Case:
    """One gradient-check case: ``fn`` applied to fresh float64 inputs."""

    label: str
    fn: Callable[..., Any]
    make_inputs: Callable[[np.random.Generator], list[Any]]

    def inputs(self, seed: int = 0) -> list[Any]:
        return self.make_inputs(np.random.default_rng(seed))


def _randn(*shape: int) -> Callable[[np.random.Generator], Tensor]:
    return lambda rng: Tensor(rng.standard_normal(shape), requires_grad=True)


def _uniform(low: float, high: float, *shape: int) -> Callable[[np.random.Generator], Tensor]:
    return lambda rng: Tensor(rng.uniform(low, high, shape), requires_grad=True)


def _away_from_zero(*shape: int) -> Callable[[np.random.Generator], Tensor]:
    """Values in +-[0.2, 2]: no kink (relu) or pole (division) within eps."""
    def make(rng: np.random.Generator) -> Tensor:
        magnitude = rng.uniform(0.2, 2.0, shape)
        return Tensor(magnitude * rng.choice([-1.0, 1.0], shape), requires_grad=True)
    return make


def case(label: str, fn: Callable[..., Any], *makers: Callable[[np.random.Generator], Any]
         ) -> Case:
    return Case(label, fn, lambda rng: [make(rng) for make in makers])


def _binary(fn: Callable[[Tensor, Tensor], Tensor], rhs: Callable[..., Callable]
            ) -> list[Case]:
    """Same shapes, a trailing-dim broadcast, a two-sided broadcast and a scalar."""
    return [
        case("(3,4) . (3,4)", fn, _randn(3, 4), rhs(3, 4)),
        case("(2,3,4) . (4,)", fn, _randn(2, 3, 4), rhs(4)),
        case("(3,1) . (1,4)", fn, _randn(3, 1), rhs(1, 4)),
        case("() . (2,3)", fn, _randn(), rhs(2, 3)),
    ]


def _unary(fn: Callable[[Tensor], Tensor], make: Callable[..., Callable]) -> list[Case]:
    return [case(f"{s}", fn, make(*s)) for s in [(5,), (3, 4), (2, 3, 4)]]


def _dropout(x: Tensor) -> Tensor:
    random.manual_seed(7)  # the same mask on every evaluation
    return F.dropout(x, p=0.3)


def _sdpa_dropout(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    random.manual_seed(11)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=0.25)


_padding = np.array([[False, False, True, True], [False, False, False, True]])
_class_weights = np.array([0.5, 2.0, 1.25])
_probabilities = np.random.default_rng(3).dirichlet(np.ones(3), size=4)

SAMPLES: dict[str, list[Case]] = {
    "add": _binary(lambda a, b: a + b, _randn),
    "residual_add": _binary(F.residual, _randn),
    "sub": _binary(lambda a, b: a - b, _randn),
    "mul": _binary(lambda a, b: a * b, _randn),
    "div": _binary(lambda a, b: a / b, _away_from_zero),
    "pow": [
        case("(3,4) ** (3,4)", lambda a, b: a**b, _uniform(0.5, 2, 3, 4), _randn(3, 4)),
        case("(2,3) ** (3,)", lambda a, b: a**b, _uniform(0.5, 2, 2, 3), _randn(3)),
        case("(4,) ** 3", lambda a: a**3, _randn(4)),
        case("2 ** (2,2)", lambda a: 2.0**a, _randn(2, 2)),
    ],
    "neg": _unary(lambda x: -x, _randn),
    "exp": _unary(lambda x: x.exp(), _randn),
    "log": _unary(lambda x: x.log(), lambda *s: _uniform(0.2, 3, *s)),
    "sqrt": _unary(lambda x: x.sqrt(), lambda *s: _uniform(0.2, 3, *s)),
    "tanh": _unary(lambda x: x.tanh(), _randn),
    "sigmoid": _unary(lambda x: x.sigmoid(), _randn),
    "relu": _unary(lambda x: x.relu(), _away_from_zero),
    "gelu": _unary(lambda x: x.gelu(), _randn)
    + _unary(lambda x: x.gelu(approximate="tanh"), _randn),
    "cast": [
        case("float64 -> longdouble -> float64", lambda x: x.astype(np.longdouble).double(),
             _randn(3, 4)),
        case("float64 -> float64", lambda x: x.astype(np.float64), _randn(2, 5)),
        case("cast inside a product", lambda x, y: x.astype(np.float64) * y, _randn(3),
             _randn(2, 3)),
    ],
    "sum": [
        case("(3,4) all", lambda x: x.sum(), _randn(3, 4)),
        case("(2,3,4) axis=1", lambda x: x.sum(axis=1), _randn(2, 3, 4)),
        case("(2,3,4) axis=(0,2) keepdims", lambda x: x.sum(axis=(0, 2), keepdims=True),
             _randn(2, 3, 4)),
        case("(2,3) axis=-1", lambda x: x.sum(axis=-1), _randn(2, 3)),
    ],
    "mean": [
        case("(3,4) all", lambda x: x.mean(), _randn(3, 4)),
        case("(2,3,4) axis=(1,2)", lambda x: x.mean(axis=(1, 2)), _randn(2, 3, 4)),
        case("(2,3) axis=0 keepdims", lambda x: x.mean(axis=0, keepdims=True), _randn(2, 3)),
    ],
    "var": [
        case("(5,) unbiased", lambda x: x.var(), _randn(5)),
        case("(3,4) axis=1 biased", lambda x: x.var(axis=1, correction=0), _randn(3, 4)),
        case("(2,3,4) axis=(0,2) keepdims", lambda x: x.var(axis=(0, 2), keepdims=True),
             _randn(2, 3, 4)),
    ],
    "max": [
        case("(3,4) all", lambda x: x.max(), _randn(3, 4)),
        case("(2,3,4) amax dim=1", lambda x: x.amax(dim=1), _randn(2, 3, 4)),
        case("(2,3,4) amax dim=(0,2) keepdim", lambda x: x.amax(dim=(0, 2), keepdim=True),
             _randn(2, 3, 4)),
    ],
    "min": [
        case("(3,4) all", lambda x: x.min(), _randn(3, 4)),
        case("(2,3,4) amin dim=1", lambda x: x.amin(dim=1), _randn(2, 3, 4)),
        case("(2,3,4) amin dim=(0,2) keepdim", lambda x: x.amin(dim=(0, 2), keepdim=True),
             _randn(2, 3, 4)),
    ],
    "max_dim": [
        case("(3,4) dim=1", lambda x: x.max(1).values, _randn(3, 4)),
        case("(2,3,4) dim=0 keepdim", lambda x: x.max(0, keepdim=True).values,
             _randn(2, 3, 4)),
        case("(5,) dim=-1", lambda x: x.max(dim=-1)[0], _randn(5)),
    ],
    "min_dim": [
        case("(3,4) dim=1", lambda x: x.min(1).values, _randn(3, 4)),
        case("(2,3,4) dim=2 keepdim", lambda x: x.min(2, keepdim=True).values,
             _randn(2, 3, 4)),
        case("(5,) dim=0", lambda x: x.min(0)[0], _randn(5)),
    ],
    "norm": [
        case("(3,4) all", lambda x: x.norm(), _randn(3, 4)),
        case("(2,3,4) dim=-1", lambda x: x.norm(dim=-1), _randn(2, 3, 4)),
        case("(2,3,4) dim=(0,2) keepdim", lambda x: x.norm(dim=(0, 2), keepdim=True),
             _randn(2, 3, 4)),
    ],
    "sin": _unary(lambda x: x.sin(), _randn),
    "cos": _unary(lambda x: x.cos(), _randn),
    "abs": _unary(lambda x: x.abs(), _away_from_zero),
    "clamp": [
        case("(3,4) both", lambda x: x.clamp(-0.5, 0.5), _away_from_zero(3, 4)),
        case("(5,) min only", lambda x: x.clamp(min=0.3), _away_from_zero(5)),
        case("(2,3,4) max only", lambda x: x.clamp(max=-0.1), _away_from_zero(2, 3, 4)),
    ],
    "maximum": _binary(lambda a, b: a.maximum(b), _randn),
    "minimum": _binary(lambda a, b: a.minimum(b), _randn),
    "where": [
        case("(3,4) . (3,4)", lambda a, b: a.where(a.data > 0, b), _randn(3, 4),
             _randn(3, 4)),
        case("(2,3,4) . (4,)", lambda a, b: a.where(np.arange(4) % 2 == 0, b),
             _randn(2, 3, 4), _randn(4)),
        case("(3,1) . (1,4)", lambda a, b: a.where(np.eye(3, 4, dtype=bool), b),
             _randn(3, 1), _randn(1, 4)),
    ],
    "clone": _unary(lambda x: x.clone() * x, _randn),
    "expand": [
        case("(3,1) -> (3,4)", lambda x: x.expand(3, 4), _randn(3, 1)),
        case("(4,) -> (2,3,4)", lambda x: x.expand(2, 3, -1), _randn(4)),
        case("(1,2,1) -> (3,2,5)", lambda x: x.expand((3, 2, 5)), _randn(1, 2, 1)),
    ],
    "repeat": [
        case("(3,) x 2", lambda x: x.repeat(2), _randn(3)),
        case("(2,3) x (2,1)", lambda x: x.repeat(2, 1), _randn(2, 3)),
        case("(2,3) x (2,1,3)", lambda x: x.repeat(2, 1, 3), _randn(2, 3)),
    ],
    "reshape": [
        case("(3,4) -> (2,6)", lambda x: x.reshape(2, 6), _randn(3, 4)),
        case("(2,3,4) -> (-1,)", lambda x: x.reshape(-1), _randn(2, 3, 4)),
        case("(6,) -> (1,2,3)", lambda x: x.reshape((1, 2, 3)), _randn(6)),
    ],
    "transpose": [
        case("(3,4) 0<->1", lambda x: x.transpose(0, 1), _randn(3, 4)),
        case("(2,3,4) 1<->2", lambda x: x.transpose(1, 2), _randn(2, 3, 4)),
        case("(2,3,4) -1<->0", lambda x: x.transpose(-1, 0), _randn(2, 3, 4)),
    ],
    "permute": [
        case("(2,3,4) (2,0,1)", lambda x: x.permute(2, 0, 1), _randn(2, 3, 4)),
        case("(3,4) .T", lambda x: x.T, _randn(3, 4)),
        case("(2,3,4,5) (0,2,1,3)", lambda x: x.permute((0, 2, 1, 3)), _randn(2, 3, 4, 5)),
    ],
    "getitem": [
        case("basic slices", lambda x: x[1:, ::2], _randn(3, 4)),
        case("int, None, ellipsis", lambda x: x[0, None, ..., 1], _randn(2, 3, 4)),
        case("repeated integer array", lambda x: x[np.array([0, 2, 0, 0])], _randn(3, 4)),
        case("integer Tensor pair", lambda x: x[Tensor(np.array([1, 1, 0])),
                                                np.array([2, 2, 3])], _randn(2, 4)),
        case("boolean mask", lambda x: x[np.array([True, False, True])], _randn(3, 2)),
    ],
    "concat": [
        case("axis 0", lambda a, b: F.concat([a, b], axis=0), _randn(2, 3), _randn(4, 3)),
        case("axis -1 of three", lambda a, b, c: F.concat([a, b, c], axis=-1),
             _randn(2, 1), _randn(2, 3), _randn(2, 2)),
        case("3-D axis 1", lambda a, b: F.concat([a, b], axis=1), _randn(2, 1, 3),
             _randn(2, 2, 3)),
    ],
    "stack": [
        case("axis 0", lambda a, b: F.stack([a, b]), _randn(3), _randn(3)),
        case("axis 1", lambda a, b, c: F.stack([a, b, c], axis=1), _randn(2, 3),
             _randn(2, 3), _randn(2, 3)),
        case("axis -1", lambda a, b: F.stack([a, b], axis=-1), _randn(2, 2), _randn(2, 2)),
    ],
    "masked_fill": [
        case("(2,4) same-shape mask", lambda x: x.masked_fill(_padding, -3.0), _randn(2, 4)),
        case("(3,2,4) broadcast mask", lambda x: x.masked_fill(_padding, 0.5), _randn(3, 2, 4)),
        case("(2,4) column mask", lambda x: x.masked_fill(np.array([[True], [False]]), 2.0),
             _randn(2, 4)),
    ],
    "matmul": [
        case("(3,4) @ (4,5)", F.matmul, _randn(3, 4), _randn(4, 5)),
        case("(2,3,4) @ (2,4,5)", F.matmul, _randn(2, 3, 4), _randn(2, 4, 5)),
        case("(2,1,3,4) @ (5,4,2) broadcast batch", F.matmul, _randn(2, 1, 3, 4),
             _randn(5, 4, 2)),
        case("(2,3,4) @ (4,5)", F.matmul, _randn(2, 3, 4), _randn(4, 5)),
        case("(3,4) @ (2,4,5)", F.matmul, _randn(3, 4), _randn(2, 4, 5)),
        case("(4,) @ (2,4,3)", F.matmul, _randn(4), _randn(2, 4, 3)),
        case("(2,3,4) @ (4,)", F.matmul, _randn(2, 3, 4), _randn(4)),
        case("(4,) @ (4,)", F.matmul, _randn(4), _randn(4)),
    ],
    "linear": [
        case("(4,3) -> 5", F.linear, _randn(4, 3), _randn(5, 3), _randn(5)),
        case("(2,3,4) -> 2", F.linear, _randn(2, 3, 4), _randn(2, 4), _randn(2)),
        case("(3,) no bias", F.linear, _randn(3), _randn(4, 3)),
        case("(2,2,2,3) -> 1", F.linear, _randn(2, 2, 2, 3), _randn(1, 3), _randn(1)),
    ],
    "softmax": [
        case("(5,)", lambda x: F.softmax(x, -1), _randn(5)),
        case("(3,4) dim 0", lambda x: F.softmax(x, dim=0), _randn(3, 4)),
        case("(2,3,4) axis -1", lambda x: x.softmax(-1), _randn(2, 3, 4)),
    ],
    "log_softmax": [
        case("(5,)", lambda x: F.log_softmax(x, 0), _randn(5)),
        case("(3,4) dim 0", lambda x: F.log_softmax(x, dim=0), _randn(3, 4)),
        case("(2,3,4) axis 1", lambda x: x.log_softmax(1), _randn(2, 3, 4)),
    ],
    "layer_norm": [
        case("(4,6) affine", lambda x, w, b: F.layer_norm(x, 6, w, b), _randn(4, 6),
             _randn(6), _randn(6)),
        case("(2,3,4) no affine", lambda x: F.layer_norm(x, 4), _randn(2, 3, 4)),
        case("(2,3,4) over (3,4)", lambda x, w, b: F.layer_norm(x, (3, 4), w, b),
             _randn(2, 3, 4), _randn(3, 4), _randn(3, 4)),
        case("(3,5) bias only", lambda x, b: F.layer_norm(x, 5, bias=b), _randn(3, 5),
             _randn(5)),
    ],
    "cross_entropy": [
        case("(4,5)", lambda x: F.cross_entropy(x, np.array([0, 4, 2, 2])), _randn(4, 5)),
        case("(2,3,4) classes on dim 1",
             lambda x: F.cross_entropy(x, np.array([[0, 1, 2, 2], [1, 1, 0, 2]])),
             _randn(2, 3, 4)),
        case("(5,3) ignore_index",
             lambda x: F.cross_entropy(x, np.array([1, -100, 2, 0, -100])), _randn(5, 3)),
        case("(6,) one sample", lambda x: F.cross_entropy(x, np.array(3)), _randn(6)),
        case("(5,3) class weights, ignore_index=1",
             lambda x: F.cross_entropy(x, np.array([1, 0, 2, 2, 1]), _class_weights,
                                       ignore_index=1), _randn(5, 3)),
        case("(4,3) label smoothing, weights, sum",
             lambda x: F.cross_entropy(x, np.array([0, 2, 1, -100]), _class_weights,
                                       reduction="sum", label_smoothing=0.2), _randn(4, 3)),
        case("(2,3,2) reduction none, smoothing",
             lambda x: F.cross_entropy(x, np.array([[0, 2], [1, 1]]), reduction="none",
                                       label_smoothing=0.1), _randn(2, 3, 2)),
        case("(4,3) probability targets, weights, smoothing",
             lambda x: F.cross_entropy(x, _probabilities, _class_weights,
                                       label_smoothing=0.3), _randn(4, 3)),
    ],
    "nll_loss": [
        case("(4,5)", lambda x: F.nll_loss(x, np.array([0, 4, 2, 2])), _randn(4, 5)),
        case("(2,3,4) weights, ignore_index",
             lambda x: F.nll_loss(x, np.array([[0, 1, 2, 2], [1, -100, 0, 2]]),
                                  _class_weights), _randn(2, 3, 4)),
        case("(5,3) sum", lambda x: F.nll_loss(x, np.array([1, 0, 2, 0, 1]), reduction="sum"),
             _randn(5, 3)),
        case("(3,3) none, ignore_index=2",
             lambda x: F.nll_loss(x, np.array([1, 2, 0]), ignore_index=2, reduction="none"),
             _randn(3, 3)),
    ],
    "mse_loss": [
        case("(3,4) mean", F.mse_loss, _randn(3, 4), _randn(3, 4)),
        case("(2,3,4) against (4,) sum", lambda x, t: F.mse_loss(x, t, reduction="sum"),
             _randn(2, 3, 4), _randn(4)),
        case("(3,1) against (1,4) none", lambda x, t: F.mse_loss(x, t, reduction="none"),
             _randn(3, 1), _randn(1, 4)),
        case("(5,) against an array", lambda x: F.mse_loss(x, np.linspace(-1, 1, 5)),
             _randn(5)),
    ],
    "silu": _unary(F.silu, _randn),
    "embedding": [
        case("(2,3) indices, repeats", lambda w: F.embedding(np.array([[0, 2, 2], [4, 0, 1]]),
                                                             w), _randn(5, 3)),
        # The padding row gets no gradient by design (a test checks that): it is left out
        # of the indices here, so finite differences agree.
        case("padding_idx", lambda w: F.embedding(np.array([2, 3, 2, 0]), w, padding_idx=1),
             _randn(4, 2)),
        case("0-d index, negative padding_idx",
             lambda w: F.embedding(np.array(1), w, padding_idx=-1), _randn(3, 4)),
    ],
    "dropout": [
        case("(10,)", _dropout, _randn(10)),
        case("(3,4)", _dropout, _randn(3, 4)),
        case("(2,3,4)", _dropout, _randn(2, 3, 4)),
    ],
    "scaled_dot_product_attention": [
        case("(2,3,4) self-attention", F.scaled_dot_product_attention, _randn(2, 3, 4),
             _randn(2, 3, 4), _randn(2, 3, 4)),
        case("(2,2,3,4) cross L=3,S=5,Ev=2", F.scaled_dot_product_attention,
             _randn(2, 2, 3, 4), _randn(2, 2, 5, 4), _randn(2, 2, 5, 2)),
        case("broadcast k,v over heads", F.scaled_dot_product_attention,
             _randn(2, 3, 2, 4), _randn(2, 1, 4, 4), _randn(2, 1, 4, 3)),
        case("boolean mask (True: may attend)",
             lambda q, k, v: F.scaled_dot_product_attention(q, k, v, ~_padding[:, None, :]),
             _randn(2, 3, 4), _randn(2, 4, 4), _randn(2, 4, 4)),
        case("float mask with grad", lambda q, k, v, m: F.scaled_dot_product_attention(
            q, k, v, attn_mask=m), _randn(2, 3, 4), _randn(2, 4, 4), _randn(2, 4, 2),
             _randn(3, 4)),
        case("causal", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
             _randn(2, 4, 3), _randn(2, 4, 3), _randn(2, 4, 3)),
        case("dropout", _sdpa_dropout, _randn(2, 3, 4), _randn(2, 3, 4), _randn(2, 3, 4)),
    ],
    "self_attention": [
        case("(3,2,4,3) packed", F.self_attention, _randn(3, 2, 4, 3)),
        case("(3,2,2,4,3) heads, boolean padding mask",
             lambda qkv: F.self_attention(qkv, _padding[:, None, None, :]), _randn(3, 2, 2, 4, 3)),
        case("float mask with grad", lambda qkv, m: F.self_attention(qkv, attn_mask=m),
             _randn(3, 2, 4, 3), _randn(4, 4)),
        case("causal", lambda qkv: F.self_attention(qkv, is_causal=True), _randn(3, 1, 5, 2)),
        case("packed by a permute, as MultiheadAttention does",
             lambda x: F.self_attention(x.reshape(2, 4, 3, 2, 3).permute(2, 0, 3, 1, 4)),
             _randn(2, 4, 18)),
    ],
}
