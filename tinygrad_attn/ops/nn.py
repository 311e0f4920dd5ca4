"""Fused neural-network ops, each with a closed-form backward pass: softmax,
log_softmax, layer_norm, cross_entropy, dropout and scaled dot-product attention.

Each is numerically stable: the maximum is subtracted before ``exp``, so inputs of
magnitude 1e4 give finite outputs and gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tinygrad_attn import random
from tinygrad_attn.engine import Op
from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    out = x - np.max(x, axis=axis, keepdims=True)
    np.exp(out, out=out)
    out /= np.sum(out, axis=axis, keepdims=True)
    return out


def _dot_along(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """sum(a * b, axis, keepdims=True) without materialising a * b (einsum streams it)."""
    if axis in (-1, a.ndim - 1):
        return np.einsum("...i,...i->...", a, b)[..., None]
    return np.sum(a * b, axis=axis, keepdims=True)


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


def _check_axis(axis: int, ndim: int) -> None:
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"axis {axis} is out of range for a tensor with {ndim} dims")


class Softmax(Op):
    name = "softmax"

    def forward(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        _check_axis(axis, x.ndim)
        self.axis = axis
        self.out = _softmax(x, axis)
        return self.out

    def backward(self, g: np.ndarray) -> Grads:
        y = self.out
        # d softmax: y * (g - sum(g * y))
        grad = g - _dot_along(g, y, self.axis)
        grad *= y
        return (grad,)


class LogSoftmax(Op):
    name = "log_softmax"

    def forward(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        _check_axis(axis, x.ndim)
        self.axis = axis
        shifted = x - np.max(x, axis=axis, keepdims=True)
        shifted -= np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        self.out = shifted
        return shifted

    def backward(self, g: np.ndarray) -> Grads:
        # d log_softmax: g - softmax * sum(g)
        return (g - np.exp(self.out) * np.sum(g, axis=self.axis, keepdims=True),)


class LayerNorm(Op):
    """Normalise over the trailing ``normalized_shape`` dims, then scale and shift."""

    name = "layer_norm"

    def forward(self, x: np.ndarray, *affine: np.ndarray,
                normalized_shape: tuple[int, ...], eps: float,
                has_weight: bool, has_bias: bool) -> np.ndarray:
        n = len(normalized_shape)
        if x.shape[x.ndim - n:] != normalized_shape or n > x.ndim:
            raise ValueError(f"layer_norm: normalized_shape {normalized_shape} does not "
                             f"match the trailing dims of the input of shape {x.shape}")
        weight = affine[0] if has_weight else None
        bias = affine[-1] if has_bias else None
        for label, p in (("weight", weight), ("bias", bias)):
            if p is not None and p.shape != normalized_shape:
                raise ValueError(f"layer_norm: {label} of shape {p.shape} does not match "
                                 f"normalized_shape {normalized_shape}")
        width = math.prod(normalized_shape)
        rows = x.reshape(-1, width)
        inv_width = 1.0 / width  # sum * (1/n): np.mean costs more Python per call
        centered = rows - rows.sum(axis=-1, keepdims=True) * inv_width
        var = _dot_along(centered, centered, -1) * inv_width
        self.rstd = 1.0 / np.sqrt(var + eps)
        self.xhat = centered
        self.xhat *= self.rstd
        self.x_shape, self.normalized_shape = x.shape, normalized_shape
        self.weight, self.has_bias = weight, has_bias
        out = self.xhat.reshape(x.shape)
        if weight is not None:
            out = out * weight
            if bias is not None:
                out += bias  # out is ours now: no second array
        elif bias is not None:
            out = out + bias
        return out

    def backward(self, g: np.ndarray) -> Grads:
        xhat, width = self.xhat, self.xhat.shape[-1]
        g_rows = g.reshape(-1, width)
        need_x = self.needs_input_grad[0]
        grads: list[np.ndarray | None] = [None]
        g_xhat = g_rows
        if self.weight is not None:
            grads.append(np.einsum("ij,ij->j", g_rows, xhat).reshape(self.normalized_shape)
                         if self.needs_input_grad[1] else None)
            g_xhat = g_rows * self.weight.reshape(-1)
        if self.has_bias:
            grads.append(g_rows.sum(axis=0).reshape(self.normalized_shape)
                         if self.needs_input_grad[-1] else None)
        if need_x:
            # dx = rstd * (g_xhat - mean(g_xhat) - xhat * mean(g_xhat * xhat))
            inv_width = 1.0 / width
            mean_g = g_xhat.sum(axis=-1, keepdims=True) * inv_width
            mean_gx = _dot_along(g_xhat, xhat, -1) * inv_width
            grad_x = xhat * mean_gx
            np.subtract(g_xhat, grad_x, out=grad_x)
            grad_x -= mean_g
            grad_x *= self.rstd
            grads[0] = grad_x.reshape(self.x_shape)
        return tuple(grads)


class CrossEntropy(Op):
    """Mean negative log-likelihood of class-index targets, over non-ignored rows.

    Classes are on axis 1 for inputs of 2 or more dims (PyTorch's layout), or the only
    axis of a 1-D input.
    """

    name = "cross_entropy"

    def forward(self, logits: np.ndarray, target: np.ndarray,
                ignore_index: int | None = None) -> np.ndarray:
        if target.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy: target must hold integer class indices, got "
                            f"dtype {target.dtype}")
        class_axis = 0 if logits.ndim == 1 else 1
        expected = logits.shape[:class_axis] + logits.shape[class_axis + 1:]
        if target.shape != expected:
            raise ValueError(f"cross_entropy: target of shape {target.shape} does not fit "
                             f"logits of shape {logits.shape} (expected target shape "
                             f"{expected})")
        num_classes = logits.shape[class_axis]
        rows = np.moveaxis(logits, class_axis, -1).reshape(-1, num_classes)
        labels = target.reshape(-1)
        valid = labels != ignore_index if ignore_index is not None else None
        if valid is not None:
            labels = np.where(valid, labels, 0)
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"cross_entropy: target values must lie in [0, {num_classes}) "
                             f"for logits of shape {logits.shape}")
        log_probs = rows - rows.max(axis=-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(axis=-1, keepdims=True))
        picked = log_probs[np.arange(len(labels)), labels]
        count = labels.size if valid is None else int(valid.sum())
        if valid is not None:
            picked = picked * valid
        self.log_probs, self.labels, self.valid, self.count = log_probs, labels, valid, count
        self.logits_shape, self.class_axis = logits.shape, class_axis
        # An empty selection gives 0/0 = NaN, as in PyTorch.
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(-picked.sum() / np.asarray(count, dtype=logits.dtype))

    def backward(self, g: np.ndarray) -> Grads:
        # d loss / d logits = (softmax - onehot(label)) * g / count, zero on ignored rows
        grad = np.exp(self.log_probs)
        grad[np.arange(len(self.labels)), self.labels] -= 1
        grad *= g / max(self.count, 1)
        if self.valid is not None:
            grad *= self.valid[:, None]
        moved = list(self.logits_shape)
        moved.append(moved.pop(self.class_axis))
        return (np.moveaxis(grad.reshape(moved), -1, self.class_axis),)


class Dropout(Op):
    name = "dropout"

    def forward(self, x: np.ndarray, p: float) -> np.ndarray:
        keep = random.generator().random(x.shape, dtype=np.float32) >= p
        # Scale the survivors by 1/(1-p) so the expected value is unchanged.
        self.mask = keep * np.asarray(1.0 / (1.0 - p) if p < 1 else 0.0, dtype=x.dtype)
        return x * self.mask

    def backward(self, g: np.ndarray) -> Grads:
        return (g * self.mask,)


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
        self.weights = weights  # kept for pictures of what each head attends to
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
            grad_weights -= _dot_along(grad_weights, weights, -1)
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


# ---- the functional API ----
def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return Softmax.apply(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return LogSoftmax.apply(x, axis=axis)


def layer_norm(x: Tensor, normalized_shape: int | Sequence[int],
               weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` dims.

    Shape: x (..., *normalized_shape); weight and bias normalized_shape; out as x.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
        normalized_shape)
    affine = [t for t in (weight, bias) if t is not None]
    return LayerNorm.apply(x, *affine, normalized_shape=shape, eps=eps,
                           has_weight=weight is not None, has_bias=bias is not None)


def cross_entropy(logits: Tensor, target: Tensor | np.ndarray,
                  ignore_index: int | None = None) -> Tensor:
    """Mean cross-entropy of logits (N, C) or (N, C, d1, ...) against integer targets
    (N,) or (N, d1, ...); rows whose target is ``ignore_index`` are left out."""
    target_data = target.data if isinstance(target, Tensor) else np.asarray(target)
    return CrossEntropy.apply(logits, target=target_data, ignore_index=ignore_index)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability must lie in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, p=p)


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor,
                                 attn_mask: Tensor | np.ndarray | None = None,
                                 is_causal: bool = False, dropout_p: float = 0.0,
                                 scale: float | None = None) -> Tensor:
    """Attention: softmax(q k^T / sqrt(E) + mask) v, fused forward and backward.

    Shape: q (..., L, E), k (..., S, E), v (..., S, Ev) -> (..., L, Ev); attn_mask
    broadcasts to (..., L, S). A boolean mask is True where attention is NOT allowed
    (the convention of ``nn.MultiheadAttention``; note that PyTorch's functional
    ``scaled_dot_product_attention`` uses the opposite). A float mask is added to the
    scores. ``is_causal`` lets position i attend to positions 0..i only.
    """
    return _attention(ScaledDotProductAttention, [q, k, v], attn_mask, is_causal, dropout_p,
                      scale)


def self_attention(qkv: Tensor, attn_mask: Tensor | np.ndarray | None = None,
                   is_causal: bool = False, dropout_p: float = 0.0,
                   scale: float | None = None) -> Tensor:
    """:func:`scaled_dot_product_attention` of ``qkv[0]``, ``qkv[1]``, ``qkv[2]``, the
    queries, keys and values one projection made for every position.

    Shape: qkv (3, ..., L, E) -> (..., L, E); masks as for
    :func:`scaled_dot_product_attention`.
    """
    return _attention(SelfAttention, [qkv], attn_mask, is_causal, dropout_p, scale)


def _attention(op: type[ScaledDotProductAttention], inputs: list[Tensor],
               attn_mask: Tensor | np.ndarray | None, is_causal: bool, dropout_p: float,
               scale: float | None) -> Tensor:
    """Check the arguments both attention ops share and sort the mask: a boolean one is
    a parameter, a float one an input (its gradient is the scores')."""
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op.name}: dropout_p must lie in [0, 1], got {dropout_p}")
    if is_causal and attn_mask is not None:
        raise ValueError(f"{op.name}: pass attn_mask or is_causal, not both")
    bool_mask = None
    if attn_mask is not None:
        mask = attn_mask if isinstance(attn_mask, Tensor) else Tensor._wrap(
            np.asarray(attn_mask))
        if mask.dtype == np.bool_:
            bool_mask = mask.data
        elif mask.dtype.kind == "f":
            inputs.append(mask)
        else:
            raise TypeError(f"{op.name}: attn_mask must be boolean or float, got "
                            f"{mask.dtype}")
    return op.apply(*inputs, bool_mask=bool_mask, is_causal=is_causal, dropout_p=dropout_p,
                    scale=scale)
