"""tinygrad_attn: a small NumPy tensor library with reverse-mode autograd, built to show
how attention and backpropagation work."""

from __future__ import annotations

from tinygrad_attn import nn, ops, optim
from tinygrad_attn.anomaly import AnomalyError, detect_anomaly
from tinygrad_attn.checkpoint import load, save
from tinygrad_attn.engine import is_grad_enabled, no_grad
from tinygrad_attn.gradcheck import GradcheckError, gradcheck
from tinygrad_attn.ops.shape import concat, stack
from tinygrad_attn.random import manual_seed
from tinygrad_attn.tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    "AnomalyError", "GradcheckError", "Tensor", "concat", "detect_anomaly", "gradcheck",
    "is_grad_enabled", "load", "manual_seed", "nn", "no_grad", "ops", "optim", "save",
    "stack",
]
