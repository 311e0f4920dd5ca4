"""Scaled dot-product attention with a fused backward pass, and its packed
self-attention form."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from tinygrad_attn import parallel, random
from tinygrad_attn.engine import Node, Op
from tinygrad_attn.ops.norm import dot_along

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]


def _product_array(lead: tuple[int, ...], rows: int, cols: int, dtype: np.dtype,
                   like: np.ndarray) -> np.ndarray:
    """An empty array for a product of shape ``lead + (rows, cols)``, in the memory layout
    of ``like`` when the shapes agree.

    Attention's q, k, v are usually heads split off a (batch, seq, embed) array by a
    transpose; results laid out the same way make the transpose and reshape that merge
    the heads (or pass gradients back to the projection) free views, not copies.
    """
    shape = lead + (rows, cols)
    return np.empty_like(like, dtype=dtype) if shape == like.shape else np.empty(shape, dtype)


def _lead(t: np.ndarray, lead: tuple[int, ...]) -> np.ndarray:
    """``t`` as a view with the leading dims ``lead`` (broadcast, never copied)."""
    return t if t.shape[:-2] == lead else np.broadcast_to(t, lead + t.shape[-2:])


def _parts(lead: tuple[int, ...], length: int, source: int) -> list:
    """Index expressions that split the (batch, head, ...) dims into blocks for the pool:
    slices of the batch axis, or of the head axis when batches are few; the whole array
    (one part) when it is small. Each (batch, head) pair is its own product whatever
    block it is in, and blocks that fit a core's cache pay on one thread too."""
    if not lead:
        return [...]
    axis = 1 if len(lead) > 1 and lead[0] < 8 else 0
    parts = parallel.blocks(lead[axis], math.prod(lead) // lead[axis] * length * source)
    if parts is None:
        return [...]
    return parts if axis == 0 else [(slice(None), part) for part in parts]


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
        length, source = q.shape[-2], k.shape[-2]
        if is_causal:
            bool_mask = np.triu(np.ones((length, source), dtype=bool), k=1)
        masks = float_mask if bool_mask is None else (bool_mask, *float_mask)
        lead = q.shape[:-2]
        if k.shape[:-2] != lead or v.shape[:-2] != lead or masks:
            lead = np.broadcast_shapes(lead, k.shape[:-2], v.shape[:-2],
                                       *(m.shape[:-2] for m in masks))
        # Every (batch, head) pair is independent: parts of those dims go to the pool.
        # Broadcast views (no copies) give every array the same leading dims to index.
        score_shape = lead + (length, source)
        q_all, k_all, v_all = (_lead(t, lead) for t in (q, k, v))
        bool_all = None if bool_mask is None else np.broadcast_to(bool_mask, score_shape)
        add_all = np.broadcast_to(float_mask[0], score_shape) if float_mask else None
        weights = np.empty(score_shape, np.result_type(q, k, *float_mask))
        draws = None
        if dropout_p > 0:  # drawn whole, so the random stream is the thread count's alike
            draws = random.generator().random(score_shape, dtype=np.float32)
            keep_scale = np.asarray(1.0 / (1.0 - dropout_p) if dropout_p < 1 else 0.0,
                                    dtype=weights.dtype)
            self.keep_scaled = np.empty_like(weights)
            self.dropped = np.empty_like(weights)
        else:
            self.keep_scaled = None
            self.dropped = weights
        out = _product_array(lead, length, v.shape[-1], np.result_type(weights, v), q)
        scale_q = np.asarray(self.scale, dtype=q.dtype)

        def attend(part: slice | tuple) -> None:
            # Scale q, not the scores: (L, E) is a smaller array than (L, S) when S > E.
            scores = np.matmul(q_all[part] * scale_q, np.swapaxes(k_all[part], -1, -2))
            if bool_all is not None:
                np.copyto(scores, -np.inf, where=bool_all[part])  # True: may not attend
            if add_all is not None:
                scores = scores + add_all[part]
            # Safe softmax: a row with every key masked gets zero weights, not NaN.
            row_max = np.max(scores, axis=-1, keepdims=True)
            row_max[~np.isfinite(row_max)] = 0
            w = weights[part]
            np.subtract(scores, row_max, out=w)
            np.exp(w, out=w)
            total = w.sum(axis=-1, keepdims=True)
            total[total == 0] = 1
            w /= total
            if draws is not None:
                keep = np.greater_equal(draws[part], dropout_p)
                np.multiply(keep, keep_scale, out=self.keep_scaled[part])
                np.multiply(w, self.keep_scaled[part], out=self.dropped[part])
            np.matmul(self.dropped[part], v_all[part], out=out[part])

        parallel.run(attend, _parts(lead, length, source),
                     blas=length * source * max(q.shape[-1], v.shape[-1])
                     >= parallel.BLAS_THREADED)
        self.weights = weights  # the softmax weights, (..., L, S), before dropout
        self.q, self.k, self.v, self.lead = q, k, v, lead
        return out

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
        weights, dropped, keep_scaled, lead = self.weights, self.dropped, self.keep_scaled, \
            self.lead
        q, k, v = self.q, self.k, self.v
        q_all, k_all, v_all = (_lead(t, lead) for t in (q, k, v))
        length, source = weights.shape[-2:]
        score_dtype = np.result_type(g, v)
        grads = []
        for need, like, rows, cols, dtype, packed in (
                (need_q, q, length, q.shape[-1], np.result_type(score_dtype, k), 0),
                (need_k, k, source, k.shape[-1], np.result_type(score_dtype, q), 1),
                (need_v, v, source, g.shape[-1], np.result_type(dropped, g), 2)):
            if not need:
                grads.append(None)
            elif into is not None:
                grads.append(into[packed])
            else:
                grads.append(_product_array(lead, rows, cols, dtype, like))
        grad_q, grad_k, grad_v = grads
        grad_scores = np.empty(weights.shape, score_dtype) if need_scores else None
        scale_q, scale_k = (None if t is None else np.asarray(self.scale, dtype=t.dtype)
                            for t in (grad_q, grad_k))

        def attend_backward(part: slice | tuple) -> None:
            if need_v:
                np.matmul(np.swapaxes(dropped[part], -1, -2), g[part], out=grad_v[part])
            if not (need_q or need_k or need_scores):
                return
            w = weights[part]
            grad_w = np.matmul(g[part], np.swapaxes(v_all[part], -1, -2),
                               out=None if grad_scores is None else grad_scores[part])
            if keep_scaled is not None:
                grad_w *= keep_scaled[part]
            # d softmax: w * (gw - sum(gw * w)); masked entries have w = 0 and get 0.
            grad_w -= dot_along(grad_w, w, -1)
            grad_w *= w
            if need_q:
                np.matmul(grad_w, k_all[part], out=grad_q[part])
                grad_q[part] *= scale_q
            if need_k:
                np.matmul(np.swapaxes(grad_w, -1, -2), q_all[part], out=grad_k[part])
                grad_k[part] *= scale_k

        parallel.run(attend_backward, _parts(lead, length, source),
                     blas=length * source * max(q.shape[-1], v.shape[-1])
                     >= parallel.BLAS_THREADED)
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
