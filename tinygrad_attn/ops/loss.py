"""Losses with closed-form backward passes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinygrad_attn.engine import Op, array_of

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]


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


def cross_entropy(logits: Tensor, target: Tensor | np.ndarray,
                  ignore_index: int | None = None) -> Tensor:
    """Mean cross-entropy of logits (N, C) or (N, C, d1, ...) against integer targets
    (N,) or (N, d1, ...); rows whose target is ``ignore_index`` are left out."""
    target_data = array_of(target)
    return CrossEntropy.apply(logits, target=target_data, ignore_index=ignore_index)
