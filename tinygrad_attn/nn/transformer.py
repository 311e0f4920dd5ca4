"""The Transformer encoder: two residual blocks per layer, as in the paper and in
PyTorch's ``nn.TransformerEncoderLayer``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tinygrad_attn import ops
from tinygrad_attn.nn.attention import MaskLike, MultiheadAttention
from tinygrad_attn.nn.layers import Dropout, LayerNorm, Linear
from tinygrad_attn.nn.module import Module, ModuleList
from tinygrad_attn.tensor import Tensor

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": ops.relu, "gelu": ops.gelu}


class TransformerEncoderLayer(Module):
    """Self-attention block and feed-forward block, each wrapped as ``x + block(x)``.

    Post-norm (default): ``x = norm1(x + sa(x)); x = norm2(x + ff(x))``.
    Pre-norm (``norm_first``): ``x = x + sa(norm1(x)); x = x + ff(norm2(x))``.

    Shape: src (S, B, d_model), or (B, S, d_model) with ``batch_first=True``, or
    (S, d_model) unbatched -> same. ``src_mask`` (S, S) or (B * nhead, S, S);
    ``src_key_padding_mask`` (B, S); boolean masks are True where attention is NOT
    allowed, float masks are added to the scores.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: str | Callable[[Tensor], Tensor] = "relu",
                 layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(f"TransformerEncoderLayer: activation should be relu or "
                                 f"gelu, not {activation!r}")
            activation = _ACTIVATIONS[activation]
        self.activation = activation
        self.norm_first = norm_first
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, **factory)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(self, src: Tensor, src_mask: MaskLike = None,
                src_key_padding_mask: MaskLike = None, is_causal: bool = False) -> Tensor:
        x = src
        if self.norm_first:
            x = ops.residual(x, self._sa_block(self.norm1(x), src_mask, src_key_padding_mask,
                                               is_causal))
            x = ops.residual(x, self._ff_block(self.norm2(x)))
        else:
            x = self.norm1(ops.residual(x, self._sa_block(x, src_mask, src_key_padding_mask,
                                                          is_causal)))
            x = self.norm2(ops.residual(x, self._ff_block(x)))
        return x

    def _sa_block(self, x: Tensor, attn_mask: MaskLike, key_padding_mask: MaskLike,
                  is_causal: bool) -> Tensor:
        out, _ = self.self_attn(x, x, x, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, need_weights=False,
                                is_causal=is_causal)
        return self.dropout1(out)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (each starting from the same
    weights, as in PyTorch), then an optional final ``norm``.

    Shape: src as the layer takes it -> same.
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int,
                 norm: Module | None = None, enable_nested_tensor: bool = True,
                 mask_check: bool = True) -> None:
        # enable_nested_tensor and mask_check tune PyTorch's fast path (the results are
        # the same without it); there is none here.
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src: Tensor, mask: MaskLike = None,
                src_key_padding_mask: MaskLike = None, is_causal: bool | None = None
                ) -> Tensor:
        """Shape: as :class:`TransformerEncoderLayer`'s ``src``; ``mask`` is its
        ``src_mask``. ``is_causal`` without a mask makes the layers causal."""
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal))
        return x if self.norm is None else self.norm(x)
