"""Scaled dot-product attention with a fused backward pass, and its packed
self-attention form."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tinygrad_attn import random
from tinygrad_attn.engine import Node, Op
from tinygrad_attn.ops.norm import dot_along

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]


def _matmul_like(a: np.ndarray, b: np.ndarray, like: np.ndarray,
                 out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b``, written into ``out`` if given, else in the memory layout of ``like``
    when the shapes agree.

    Attention's q, k, v are usually heads split off a (batch, seq, embed) array by a
    transpose; results laid out the same way make the transpose and reshape that merge
    the heads (or pass gradients back to the projection) free views, not copies.
    """
    if out is not None:
        return np.matmul(a, b, out=out)
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    if shape != like.shape:
        return np.matmul(a, b)
    return np.matmul(a, b, out=np.empty_like(like, dtype=np.result_type(a, b)))


class ScaledDotProductAttention(Op):
    """softmax(q k^T * scale + mask) @ v, with a fused backward pass."""

    name = "scaled_dot_product_attention"

    def forward(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, *float_mask: np.ndarray,
                bool_mask: np.ndarray | None, is_causal: bool, dropout_p: float,
                scale: float | None) -> np.ndarray:
        return self._attend(q, k, v, float_mask, bool_mask, is_causal, dropout_p, scale)

    def backward(self, g: np.ndarray) -> Grads:
        need_q, need_k, need_v = self.needs_input_grad[:3]
        has_mask = len(self.needs_input_grad) > 3
        grads = self._attend_backward(g, need_q, need_k, need_v,
                                      has_mask and self.needs_input_grad[3])
        return grads if has_mask else grads[:3]

    def _attend(self, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                float_mask: tuple[np.ndarray, ...], bool_mask: np.ndarray | None,
                is_causal: bool, dropout_p: float, scale: float | None) -> np.ndarray:
        if q.ndim < 2 or q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
            raise ValueError(f"{self.name}: q {q.shape}, k {k.shape} and v {v.shape} must "
                             f"be (..., L, E), (..., S, E), (..., S, Ev)")
        self.scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        # Scale q, not the scores: (L, E) is a smaller array than (L, S) when S > E.
        scores = np.matmul(q * np.asarray(self.scale, dtype=q.dtype), np.swapaxes(k, -1, -2))
        if is_causal:
            length, source = scores.shape[-2:]
            bool_mask = np.triu(np.ones((length, source), dtype=bool), k=1)
        if bool_mask is not None:
            scores = np.where(bool_mask, -np.inf, scores)  # True: may not attend
        if float_mask:
            scores = scores + float_mask[0]
        # Safe softmax: a row with every key masked gets zero weights, not NaN.
        row_max = np.max(scores, axis=-1, keepdims=True)
        row_max[~np.isfinite(row_max)] = 0
        weights = np.subtract(scores, row_max, out=scores)
        np.exp(weights, out=weights)
        total = weights.sum(axis=-1, keepdims=True)
        total[total == 0] = 1
        weights /= total
        self.weights = weights  # the softmax weights, (..., L, S), before dropout
        self.dropped = weights
        if dropout_p > 0:
            keep = random.generator().random(weights.shape, dtype=np.float32) >= dropout_p
            self.keep_scaled = keep * np.asarray(1.0 / (1.0 - dropout_p) if dropout_p < 1
                                                 else 0.0, dtype=weights.dtype)
            self.dropped = weights * self.keep_scaled
        else:
            self.keep_scaled = None
        self.q, self.k, self.v = q, k, v
        return _matmul_like(self.dropped, v, q)

    def weights_grad(self, g: np.ndarray) -> np.ndarray:
        """d loss / d ``self.weights`` (the softmax weights, before dropout), shape
        (..., L, S), given the gradient ``g`` of this op's output: ``g @ v^T``, times the
        dropout mask's scale where dropout dropped weights. What attention heatmaps show
        beside the weights; valid until backward() frees the op."""
        grad = np.matmul(g, np.swapaxes(self.v, -1, -2))
        if self.keep_scaled is not None:
            grad *= self.keep_scaled
        return grad

    def _attend_backward(self, g: np.ndarray, need_q: bool, need_k: bool, need_v: bool,
                         need_scores: bool, into: np.ndarray | None = None
                         ) -> tuple[np.ndarray | None, ...]:
        """Gradients of q, k, v and of the scores (what a float mask receives); with
        ``into`` (3, ...), those of q, k and v are written into its three slices."""
        weights, scale = self.weights, self.scale
        out_q, out_k, out_v = (None, None, None) if into is None else into
        grad_v = (_matmul_like(np.swapaxes(self.dropped, -1, -2), g, self.v, out_v)
                  if need_v else None)
        grad_q = grad_k = grad_scores = None
        if need_q or need_k or need_scores:
            grad_weights = np.matmul(g, np.swapaxes(self.v, -1, -2))
            if self.keep_scaled is not None:
                grad_weights *= self.keep_scaled
            # d softmax: w * (gw - sum(gw * w)); masked entries have w = 0 and get 0.
            grad_weights -= dot_along(grad_weights, weights, -1)
            grad_scores = grad_weights
            grad_scores *= weights
            if need_q:
                grad_q = _matmul_like(grad_scores, self.k, self.q, out_q)
                grad_q *= np.asarray(scale, dtype=grad_q.dtype)
            if need_k:
                grad_k = _matmul_like(np.swapaxes(grad_scores, -1, -2), self.q, self.k, out_k)
                grad_k *= np.asarray(scale, dtype=grad_k.dtype)
        return grad_q, grad_k, grad_v, grad_scores


class SelfAttention(ScaledDotProductAttention):
    """Attention over q, k and v packed in one array (3, ..., L, E), the way a single
    in-projection makes all three in self-attention. The gradient comes back as one
    array in the packed input's memory layout, so the projection's backward stays one
    matrix product and no split has to be zero-filled and summed."""

    name = "self_attention"

    def forward(self, qkv: np.ndarray, *float_mask: np.ndarray,
                bool_mask: np.ndarray | None, is_causal: bool, dropout_p: float,
                scale: float | None) -> np.ndarray:
        if qkv.ndim < 3 or qkv.shape[0] != 3:
            raise ValueError(f"self_attention: qkv of shape {qkv.shape} should stack q, k "
                             f"and v as (3, ..., L, E)")
        self.packed = qkv
        return self._attend(qkv[0], qkv[1], qkv[2], float_mask, bool_mask, is_causal,
                            dropout_p, scale)

    def backward(self, g: np.ndarray) -> Grads:
        has_mask = len(self.needs_input_grad) > 1
        need_qkv = self.needs_input_grad[0]
        grad = np.empty_like(self.packed) if need_qkv else None
        *_, grad_scores = self._attend_backward(
            g, need_qkv, need_qkv, need_qkv, has_mask and self.needs_input_grad[1], grad)
        return (grad, grad_scores) if has_mask else (grad,)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Tensor | np.ndarray | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, *,
                                 scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """PyTorch's ``F.scaled_dot_product_attention``: softmax(q k^T * scale + mask) v,
    with a fused forward and backward pass. ``scale`` defaults to 1/sqrt(E).

    A boolean ``attn_mask`` is True where attention MAY happen (PyTorch's functional
    convention; ``nn.MultiheadAttention`` uses the opposite one); a float mask is added
    to the scores. ``is_causal`` lets query i attend to keys 0..i only. A query with no
    key to attend to gets zero weights (not NaN).

    Shape: query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev);
    attn_mask broadcastable to (..., L, S).
    """
    if enable_gqa:
        raise ValueError("scaled_dot_product_attention: enable_gqa=True is not supported")
    return _attention(ScaledDotProductAttention, [query, key, value], attn_mask, is_causal,
                      dropout_p, scale, true_means_attend=True)


def masked_attention(q: Tensor, k: Tensor, v: Tensor,
                     attn_mask: Tensor | np.ndarray | None = None, dropout_p: float = 0.0,
                     is_causal: bool = False, scale: float | None = None) -> Tensor:
    """:func:`scaled_dot_product_attention` with ``nn.MultiheadAttention``'s mask
    convention: a boolean mask is True where attention is NOT allowed.

    Shape: as :func:`scaled_dot_product_attention`.
    """
    return _attention(ScaledDotProductAttention, [q, k, v], attn_mask, is_causal, dropout_p,
                      scale, true_means_attend=False)


def self_attention(qkv: Tensor, attn_mask: Tensor | np.ndarray | None = None,
                   dropout_p: float = 0.0, is_causal: bool = False,
                   scale: float | None = None) -> Tensor:
    """:func:`masked_attention` of ``qkv[0]``, ``qkv[1]``, ``qkv[2]``, the queries, keys
    and values one projection made for every position (a boolean mask is True where
    attention is NOT allowed, as in ``nn.MultiheadAttention``).

    Shape: qkv (3, ..., L, E) -> (..., L, E); attn_mask broadcastable to (..., L, L).
    """
    return _attention(SelfAttention, [qkv], attn_mask, is_causal, dropout_p, scale,
                      true_means_attend=False)


def _attention(op: type[ScaledDotProductAttention], inputs: list[Tensor],
               attn_mask: Tensor | np.ndarray | None, is_causal: bool, dropout_p: float,
               scale: float | None, true_means_attend: bool) -> Tensor:
    """Check the arguments both attention ops share and sort the mask: a boolean one is
    a parameter (True = blocked, inside the op), a float one an input (its gradient is
    the scores')."""
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op.name}: dropout_p must lie in [0, 1], got {dropout_p}")
    if is_causal and attn_mask is not None:
        raise ValueError(f"{op.name}: pass attn_mask or is_causal, not both")
    bool_mask = None
    if attn_mask is not None:
        mask = attn_mask if isinstance(attn_mask, Node) else inputs[0]._wrap(
            np.asarray(attn_mask))
        if mask.dtype == np.bool_:
            bool_mask = ~mask.data if true_means_attend else mask.data
        elif mask.dtype.kind == "f":
            inputs.append(mask)
        else:
            raise TypeError(f"{op.name}: attn_mask must be boolean or float, got "
                            f"{mask.dtype}")
    return op.apply(*inputs, bool_mask=bool_mask, is_causal=is_causal, dropout_p=dropout_p,
                    scale=scale)
