"""Multi-head attention, as in the notes: each head has its own W_Q, W_K, W_V slice;
a word's query scores every key, softmax turns scores into weights, the weighted values
are the word's new vector; heads are concatenated and projected back."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinygrad_attn import ops
from tinygrad_attn.engine import array_of
from tinygrad_attn.nn import init
from tinygrad_attn.nn.layers import Linear, _empty
from tinygrad_attn.nn.module import Module
from tinygrad_attn.tensor import Tensor

MaskLike = Tensor | np.ndarray | None


class NonDynamicallyQuantizableLinear(Linear):
    """A Linear layer: PyTorch's class (and so its printed name) for attention's output
    projection."""


def merge_masks(attn_mask: MaskLike, key_padding_mask: MaskLike, is_causal: bool,
                batch: int, heads: int, length: int, source: int,
                dtype: np.dtype) -> np.ndarray | None:
    """One mask broadcastable to (batch, heads, L, S): boolean (True = may not attend)
    if every mask given is boolean, else additive in ``dtype`` (True becomes -inf).

    ``attn_mask`` (L, S) or (batch * heads, L, S); ``key_padding_mask`` (batch, S);
    ``is_causal`` with no ``attn_mask`` blocks the keys after each query.
    """
    masks = []
    if attn_mask is None and is_causal:
        attn_mask = np.triu(np.ones((length, source), dtype=bool), k=1)
    if attn_mask is not None:
        attn = array_of(attn_mask)
        if attn.shape == (length, source):
            masks.append(attn)
        elif attn.shape == (batch * heads, length, source):
            masks.append(attn.reshape(batch, heads, length, source))
        else:
            raise ValueError(f"MultiheadAttention: attn_mask of shape {attn.shape} should be "
                             f"(L, S) = ({length}, {source}) or (batch * num_heads, L, S) "
                             f"= ({batch * heads}, {length}, {source})")
    if key_padding_mask is not None:
        padding = array_of(key_padding_mask)
        if padding.shape != (batch, source):
            raise ValueError(f"MultiheadAttention: key_padding_mask of shape {padding.shape}"
                             f" should be (batch, S) = ({batch}, {source})")
        masks.append(padding[:, None, None, :])
    for mask in masks:
        if mask.dtype != np.bool_ and mask.dtype.kind != "f":
            raise TypeError(f"MultiheadAttention: masks must be boolean or float, got "
                            f"{mask.dtype}")
    if not masks:
        return None
    if all(m.dtype == np.bool_ for m in masks):
        return masks[0] if len(masks) == 1 else masks[0] | masks[1]
    # PyTorch turns boolean masks into -inf/0 floats of the query's dtype and adds them.
    blocked, allowed = np.asarray(-np.inf, dtype=dtype), np.asarray(0.0, dtype=dtype)
    additive = [np.where(m, blocked, allowed) if m.dtype == np.bool_
                else m.astype(dtype, copy=False) for m in masks]
    return additive[0] if len(additive) == 1 else additive[0] + additive[1]


def _check_unsupported(owner: str, **options: tuple[Any, Any]) -> None:
    """Refuse PyTorch options this library does not implement, naming them."""
    for name, (value, supported) in options.items():
        if value != supported:
            raise ValueError(f"{owner}: {name}={value!r} is not supported (only "
                             f"{supported!r})")


class MultiheadAttention(Module):
    """PyTorch's ``nn.MultiheadAttention``: masks, layouts and parameter names as there.

    Parameters: ``in_proj_weight`` (3E, E) stacking W_Q, W_K, W_V; ``in_proj_bias``
    (3E,); ``out_proj`` (E -> E). Initialised as PyTorch does (xavier_uniform_ on the
    stacked weight, zero biases).

    ``forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False) -> (out, weights)``.
    Masks: a boolean mask is True where attention is NOT allowed; a float mask is added
    to the scores. ``weights`` is None unless ``need_weights``.

    Shape: with ``batch_first=False`` (the default) query (L, B, E), key and value
    (S, B, E) -> out (L, B, E); with ``batch_first=True`` (B, L, E), (B, S, E) ->
    (B, L, E); unbatched query (L, E), key and value (S, E) -> (L, E). Weights (B, L, S)
    averaged over heads or (B, H, L, S) per head ((L, S) or (H, L, S) unbatched).
    ``key_padding_mask`` (B, S) or (S,); ``attn_mask`` (L, S) or (B * H, L, S).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0,
                 bias: bool = True, *, add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        _check_unsupported("MultiheadAttention", add_bias_kv=(add_bias_kv, False),
                           add_zero_attn=(add_zero_attn, False),
                           kdim=(embed_dim if kdim is None else kdim, embed_dim),
                           vdim=(embed_dim if vdim is None else vdim, embed_dim))
        if num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible "
                             f"by num_heads {num_heads}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must lie in [0, 1], got {dropout}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        self.in_proj_weight = _empty("MultiheadAttention", (3 * embed_dim, embed_dim),
                                     device, dtype)
        self.in_proj_bias = _empty("MultiheadAttention", (3 * embed_dim,), device, dtype) \
            if bias else None
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias,
                                                        device=device, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # xavier_uniform_ on the stacked (3E, E) weight: fan_out 3E, fan_in E.
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: MaskLike = None, need_weights: bool = True,
                attn_mask: MaskLike = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        # Self-attention (one tensor passed as query, key and value: PyTorch's own test)
        # is projected by one product with the stacked weight.
        packed = query is key and key is value
        batched = self._check_shapes(query, key, value)
        if not batched:  # one sequence: a batch of one, laid out batch-first
            query, key, value = (t.reshape(1, *t.shape) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = array_of(key_padding_mask)[None]
        batch_axis = 0 if self.batch_first or not batched else 1
        seq_axis = 1 - batch_axis
        batch, length, source = (query.shape[batch_axis], query.shape[seq_axis],
                                 key.shape[seq_axis])
        mask = merge_masks(attn_mask, key_padding_mask, is_causal, batch, self.num_heads,
                           length, source, query.dtype)
        dropout_p = self.dropout if self.training else 0.0
        w, b, embed = self.in_proj_weight, self.in_proj_bias, self.embed_dim

        # 1. Project, Q = X W_Q^T + b_Q (K and V alike), and split the embedding into
        #    heads by a reshape: (.., .., E) -> (B, H, T, E/H).
        if packed:  # one product makes Q, K and V: (3, B, H, T, E/H)
            qkv = self._split_heads(ops.linear(query, w, b), batch_axis, parts=3)
        else:
            q, k, v = (self._split_heads(ops.linear(
                x, w[i * embed:(i + 1) * embed], None if b is None else b[i * embed:(i + 1)
                                                                           * embed]),
                batch_axis) for i, x in enumerate((query, key, value)))

        # 2. Attend: softmax(Q K^T / sqrt(E/H) + mask) V, every head at once.
        weights = None
        if need_weights:  # the weights are an output: compose the steps that make them
            if packed:
                q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-1, -2)
            if mask is not None:
                scores = (scores.masked_fill(mask, -np.inf) if mask.dtype == np.bool_
                          else scores + Tensor._wrap(mask))
            weights = ops.dropout(ops.softmax(scores, -1), dropout_p)
            heads = weights @ v
        elif packed:
            heads = ops.self_attention(qkv, mask, dropout_p)
        else:
            heads = ops.masked_attention(q, k, v, mask, dropout_p)

        # 3. Merge the heads back into one vector per position, and project.
        out = self.out_proj(self._merge_heads(heads, batch_axis))
        if weights is not None and average_attn_weights:
            weights = weights.mean(axis=1)
        if not batched:
            out = out.reshape(*out.shape[1:])
            weights = None if weights is None else weights.reshape(*weights.shape[1:])
        return out, weights

    def _check_shapes(self, query: Tensor, key: Tensor, value: Tensor) -> bool:
        """True for batched (3-D) inputs, False for one unbatched (2-D) sequence."""
        e = self.embed_dim
        batched = query.ndim == 3
        ndim = 3 if batched else 2
        batch_dims = [t.shape[0 if self.batch_first else 1] for t in (query, key, value)] \
            if batched else [1, 1, 1]
        if query.ndim not in (2, 3) or key.ndim != ndim or value.ndim != ndim \
                or query.shape[-1] != e or key.shape[-1] != e or value.shape[-1] != e \
                or key.shape != value.shape or len(set(batch_dims)) != 1:
            layout = "(B, L, E), (B, S, E), (B, S, E)" if self.batch_first else \
                "(L, B, E), (S, B, E), (S, B, E)"
            raise ValueError(f"MultiheadAttention: query {query.shape}, key {key.shape}, "
                             f"value {value.shape} should be {layout} with E = {e} "
                             f"(batch_first={self.batch_first}), or (L, E), (S, E), (S, E) "
                             f"unbatched")
        return batched

    def _split_heads(self, x: Tensor, batch_axis: int, parts: int = 0) -> Tensor:
        """(.., .., parts * E) in the input's layout -> ([parts,] B, H, T, E/H), a view."""
        d0, d1 = x.shape[:2]
        heads, head_dim = self.num_heads, self.head_dim
        if parts:
            return x.reshape(d0, d1, parts, heads, head_dim).permute(
                2, batch_axis, 3, 1 - batch_axis, 4)
        return x.reshape(d0, d1, heads, head_dim).permute(batch_axis, 2, 1 - batch_axis, 3)

    def _merge_heads(self, heads: Tensor, batch_axis: int) -> Tensor:
        """(B, H, L, E/H) -> (.., .., E) in the input's layout."""
        order = (0, 2, 1, 3) if batch_axis == 0 else (2, 0, 1, 3)
        merged = heads.permute(*order)
        return merged.reshape(merged.shape[0], merged.shape[1], self.embed_dim)
