"""A Transformer encoder layer (post-norm, ReLU, no dropout) written by hand in NumPy:
forward and backward of ``sum(layer(x) ** 2)``, no framework. The benchmarks time the
framework against it, after checking that both give the same gradients.
"""

from __future__ import annotations

import math

import numpy as np

Params = dict[str, np.ndarray]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    rstd = 1.0 / np.sqrt((centered * centered).mean(axis=-1, keepdims=True) + eps)
    xhat = centered * rstd
    return xhat * weight + bias, xhat, rstd


def _layer_norm_backward(g: np.ndarray, xhat: np.ndarray, rstd: np.ndarray,
                         weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g_weight = (g * xhat).sum(axis=0)
    g_bias = g.sum(axis=0)
    g_xhat = g * weight
    g_x = rstd * (g_xhat - g_xhat.mean(axis=-1, keepdims=True)
                  - xhat * (g_xhat * xhat).mean(axis=-1, keepdims=True))
    return g_x, g_weight, g_bias


def forward_backward(x: np.ndarray, p: Params, nhead: int) -> tuple[float, dict]:
    """Loss ``sum(out**2)`` and the gradients of x and of every parameter (PyTorch's
    parameter names)."""
    batch, length, width = x.shape
    head = width // nhead
    rows = x.reshape(-1, width)

    # ---- forward ----
    qkv = rows @ p["self_attn.in_proj_weight"].T + p["self_attn.in_proj_bias"]
    # (N, 3E) -> 3 x (B, H, T, E/H)
    q, k, v = qkv.reshape(batch, length, 3, nhead, head).transpose(2, 0, 3, 1, 4)
    scale = 1.0 / math.sqrt(head)
    weights = (q @ k.transpose(0, 1, 3, 2)) * np.asarray(scale, x.dtype)
    weights -= weights.max(axis=-1, keepdims=True)
    np.exp(weights, out=weights)
    weights /= weights.sum(axis=-1, keepdims=True)
    heads = weights @ v
    merged = heads.transpose(0, 2, 1, 3).reshape(-1, width)
    attn = merged @ p["self_attn.out_proj.weight"].T + p["self_attn.out_proj.bias"]
    norm1, xhat1, rstd1 = _layer_norm(rows + attn, p["norm1.weight"], p["norm1.bias"])
    hidden = norm1 @ p["linear1.weight"].T + p["linear1.bias"]
    active = np.maximum(hidden, 0)
    ff = active @ p["linear2.weight"].T + p["linear2.bias"]
    out, xhat2, rstd2 = _layer_norm(norm1 + ff, p["norm2.weight"], p["norm2.bias"])
    loss = float((out * out).sum())

    # ---- backward ----
    g: dict[str, np.ndarray] = {}
    g_out = 2 * out
    g_h2, g["norm2.weight"], g["norm2.bias"] = _layer_norm_backward(
        g_out, xhat2, rstd2, p["norm2.weight"])
    g["linear2.weight"] = g_h2.T @ active
    g["linear2.bias"] = g_h2.sum(axis=0)
    g_hidden = (g_h2 @ p["linear2.weight"]) * (hidden > 0)
    g["linear1.weight"] = g_hidden.T @ norm1
    g["linear1.bias"] = g_hidden.sum(axis=0)
    g_norm1 = g_h2 + g_hidden @ p["linear1.weight"]
    g_h1, g["norm1.weight"], g["norm1.bias"] = _layer_norm_backward(
        g_norm1, xhat1, rstd1, p["norm1.weight"])
    g["self_attn.out_proj.weight"] = g_h1.T @ merged
    g["self_attn.out_proj.bias"] = g_h1.sum(axis=0)
    g_heads = (g_h1 @ p["self_attn.out_proj.weight"]).reshape(
        batch, length, nhead, head).transpose(0, 2, 1, 3)
    g_v = weights.transpose(0, 1, 3, 2) @ g_heads
    g_weights = g_heads @ v.transpose(0, 1, 3, 2)
    g_scores = weights * (g_weights - (g_weights * weights).sum(axis=-1, keepdims=True))
    g_scores *= np.asarray(scale, x.dtype)
    g_q = g_scores @ k
    g_k = g_scores.transpose(0, 1, 3, 2) @ q
    g_qkv = np.stack([g_q, g_k, g_v]).transpose(1, 3, 0, 2, 4).reshape(-1, 3 * width)
    g["self_attn.in_proj_weight"] = g_qkv.T @ rows
    g["self_attn.in_proj_bias"] = g_qkv.sum(axis=0)
    g_x = g_h1 + g_qkv @ p["self_attn.in_proj_weight"]
    g["x"] = g_x.reshape(x.shape)
    return loss, g
