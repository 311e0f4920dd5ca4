"""Optimizers with PyTorch's update rules, and learning-rate schedulers."""

from __future__ import annotations

from tinygrad_attn.optim import lr_scheduler
from tinygrad_attn.optim.adam import Adam, AdamW
from tinygrad_attn.optim.optimizer import Optimizer
from tinygrad_attn.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]
