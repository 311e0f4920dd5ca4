"""Gradient utilities, as ``torch.nn.utils``."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tinygrad_attn.tensor import Tensor

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their joint norm (the norm
    of all gradients taken as one vector) is at most ``max_norm``.

    Returns the joint norm before clipping, as a 0-d tensor. Parameters without a
    gradient are skipped. The scale is max_norm / (norm + 1e-6), applied only when it is
    below 1, as in PyTorch.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    norm_type = float(norm_type)
    if not grads:
        return Tensor(np.zeros((), dtype=np.float32))
    dtype = np.result_type(*grads)
    if norm_type == np.inf:
        norms = [np.abs(g).max(initial=0) for g in grads]
        total = np.max(np.asarray(norms, dtype=dtype))
    else:
        norms = [np.linalg.norm(g.reshape(-1), norm_type) for g in grads]
        total = np.linalg.norm(np.asarray(norms, dtype=dtype), norm_type)
    total = np.asarray(total, dtype=dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} for "
                           f"gradients from `parameters` is non-finite, so it cannot be "
                           f"clipped. To disable this error and scale the gradients by "
                           f"the non-finite norm anyway, set `error_if_nonfinite=False`")
    # In the gradients' dtype, as PyTorch computes it.
    coefficient = np.minimum(np.asarray(max_norm, dtype) / (total + np.asarray(1e-6, dtype)),
                             np.asarray(1.0, dtype))
    for g in grads:
        # Each leaf's .grad is its own array (the engine copies what it shares).
        g *= coefficient.astype(g.dtype, copy=False)
    return Tensor(total)
