"""Multi-head attention, as in the notes: each head has its own W_Q, W_K, W_V slice;
a word's query scores every key, softmax turns scores into weights, the weighted values
are the word's new vector; heads are concatenated and projected back."""

from __future__ import annotations

import math

import numpy as np

from tinygrad_attn import ops, random
from tinygrad_attn.nn.layers import Linear
from tinygrad_attn.nn.module import Module, Parameter
from tinygrad_attn.tensor import Tensor

MaskLike = Tensor | np.ndarray | None


def _xavier_uniform(rows: int, cols: int) -> Parameter:
    # PyTorch's xavier_uniform_ on the stacked (3E, E) weight: fan_out 3E, fan_in E.
    bound = math.sqrt(6.0 / (rows + cols))
    return Parameter(random.generator().uniform(-bound, bound, (rows, cols)).astype(
        np.float32))


def _array(mask: MaskLike) -> np.ndarray | None:
    if mask is None:
        return None
    return mask.data if isinstance(mask, Tensor) else np.asarray(mask)


def merge_masks(attn_mask: MaskLike, key_padding_mask: MaskLike, batch: int, heads: int,
                length: int, source: int) -> np.ndarray | None:
    """One mask broadcastable to (batch, heads, L, S): boolean (True = may not attend) if
    both masks are boolean, else additive float (True becomes -inf)."""
    masks = []
    attn = _array(attn_mask)
    if attn is not None:
        if attn.shape == (length, source):
            masks.append(attn)
        elif attn.shape == (batch * heads, length, source):
            masks.append(attn.reshape(batch, heads, length, source))
        else:
            raise ValueError(f"MultiheadAttention: attn_mask of shape {attn.shape} should be "
                             f"({length}, {source}) or ({batch * heads}, {length}, {source})")
    padding = _array(key_padding_mask)
    if padding is not None:
        if padding.shape != (batch, source):
            raise ValueError(f"MultiheadAttention: key_padding_mask of shape {padding.shape}"
                             f" should be (batch, source length) = ({batch}, {source})")
        masks.append(padding[:, None, None, :])
    for mask in masks:
        if mask.dtype != np.bool_ and mask.dtype.kind != "f":
            raise TypeError(f"MultiheadAttention: masks must be boolean or float, got "
                            f"{mask.dtype}")
    if not masks:
        return None
    if all(m.dtype == np.bool_ for m in masks):
        return masks[0] if len(masks) == 1 else masks[0] | masks[1]
    additive = [np.where(m, -np.inf, 0.0) if m.dtype == np.bool_ else m for m in masks]
    return additive[0] if len(additive) == 1 else additive[0] + additive[1]


def _require_batch_first(layer: str, batch_first: bool) -> None:
    """Accept PyTorch's ``batch_first=True`` so ported code runs unchanged."""
    if not batch_first:
        raise ValueError(f"{layer}: sequences are always batch-first here, (batch, seq, "
                         f"embed); transpose (seq, batch, embed) inputs instead of passing "
                         f"batch_first=False")


class MultiheadAttention(Module):
    """PyTorch's ``nn.MultiheadAttention`` with ``batch_first=True``.

    Parameters: ``in_proj_weight`` (3E, E) stacking W_Q, W_K, W_V; ``in_proj_bias``
    (3E,); ``out_proj`` (E -> E).

    Shape: query (B, L, E), key and value (B, S, E) -> out (B, L, E) and, with
    ``need_weights``, the attention weights (B, L, S) averaged over heads or
    (B, H, L, S) per head. Masks: ``key_padding_mask`` (B, S), ``attn_mask`` (L, S) or
    (B*H, L, S); boolean True means "may not attend", float masks are added to scores.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0,
                 bias: bool = True, *, batch_first: bool = True) -> None:
        super().__init__()
        _require_batch_first("MultiheadAttention", batch_first)
        if num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible "
                             f"by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = _xavier_uniform(3 * embed_dim, embed_dim)
        self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, dtype=np.float32)) if bias \
            else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            self.out_proj.bias.data[...] = 0.0

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: MaskLike = None, attn_mask: MaskLike = None,
                need_weights: bool = True, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        unbatched = query.ndim == 2
        if unbatched:
            self_attention = query is key and key is value
            query, key, value = (t.reshape(1, *t.shape) for t in (query, key, value))
            if self_attention:  # keep them one tensor: the fused path checks identity
                key = value = query
            key_padding_mask = None if key_padding_mask is None else _array(
                key_padding_mask)[None]
        if query.ndim != 3 or query.shape[-1] != self.embed_dim or key.shape != value.shape \
                or key.ndim != 3 or key.shape[0] != query.shape[0] \
                or key.shape[-1] != self.embed_dim:
            raise ValueError(f"MultiheadAttention: query {query.shape}, key {key.shape}, "
                             f"value {value.shape} should be (B, L, {self.embed_dim}), "
                             f"(B, S, {self.embed_dim}), (B, S, {self.embed_dim})")
        batch, length, _ = query.shape
        source = key.shape[1]
        heads, head_dim, embed = self.num_heads, self.head_dim, self.embed_dim
        if is_causal and attn_mask is None:
            attn_mask = np.triu(np.ones((length, source), dtype=bool), k=1)
        mask = merge_masks(attn_mask, key_padding_mask, batch, heads, length, source)

        w, b = self.in_proj_weight, self.in_proj_bias
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if query is key and key is value and not need_weights:
            # Self-attention: one product makes Q = X W_Q, K = X W_K and V = X W_V for
            # every position; (B, T, 3E) -> (3, B, H, T, E/H) splits Q, K, V and heads.
            qkv = ops.linear(query, w, b).reshape(batch, length, 3, heads, head_dim)
            heads_out = ops.self_attention(qkv.permute(2, 0, 3, 1, 4), attn_mask=mask,
                                           dropout_p=dropout_p)
        else:
            # Q = X W_Q, K = X W_K, V = X W_V: three slices of the stacked projection.
            q, k, v = (ops.linear(x, w[i * embed:(i + 1) * embed],
                                  None if b is None else b[i * embed:(i + 1) * embed])
                       for i, x in enumerate((query, key, value)))
            # Split the embedding into heads: (B, T, E) -> (B, H, T, E/H).
            q, k, v = (t.reshape(batch, -1, heads, head_dim).transpose(1, 2)
                       for t in (q, k, v))
            if need_weights:
                scores = (q * (1.0 / math.sqrt(head_dim))) @ k.transpose(-1, -2)
                if mask is not None:
                    scores = scores.masked_fill(mask, -np.inf) if mask.dtype == np.bool_ \
                        else scores + mask
                weights = ops.dropout(scores.softmax(-1), dropout_p, self.training)
                heads_out = weights @ v
            else:
                heads_out = ops.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                             dropout_p=dropout_p)
        # Concatenate the heads back into one vector per position, then project.
        out = self.out_proj(heads_out.transpose(1, 2).reshape(batch, length, embed))
        if weights is not None and average_attn_weights:
            weights = weights.mean(axis=1)
        if unbatched:
            out = out.reshape(length, embed)
            weights = None if weights is None else weights.reshape(*weights.shape[1:])
        return out, weights

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
