"""Losses with closed-form backward passes: cross-entropy, negative log-likelihood and
mean squared error, with PyTorch's class weights, ``ignore_index``, ``reduction`` and
``label_smoothing``.

Classes are on dim 1 for inputs of 2 or more dims (PyTorch's layout), or the only dim of
a 1-D input. Every class-index loss here is a weighted sum over rows::

    loss = sum_i  r_i * sum_c a_ic * (-log p_ic)

so its gradient with respect to the logits is ``r_i * (p_i * sum_c a_ic - a_i)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinygrad_attn.engine import Node, Op, array_of

if TYPE_CHECKING:
    from tinygrad_attn.tensor import Tensor

Grads = tuple[np.ndarray | None, ...]
REDUCTIONS = ("mean", "sum", "none")


def _class_rows(name: str, x: np.ndarray) -> tuple[np.ndarray, int]:
    """The input as (rows, classes), classes moved last; and the class axis."""
    if x.ndim == 0:
        raise ValueError(f"{name}: input must have a class dimension, got shape ()")
    class_axis = 0 if x.ndim == 1 else 1
    return np.moveaxis(x, class_axis, -1).reshape(-1, x.shape[class_axis]), class_axis


def _back_to_input(grad_rows: np.ndarray, shape: tuple[int, ...], class_axis: int
                   ) -> np.ndarray:
    moved = list(shape)
    moved.append(moved.pop(class_axis))
    return np.moveaxis(grad_rows.reshape(moved), -1, class_axis)


def _class_weight(name: str, weight: np.ndarray | None, classes: int,
                  dtype: np.dtype) -> np.ndarray | None:
    if weight is None:
        return None
    if weight.shape != (classes,):
        raise ValueError(f"{name}: weight of shape {weight.shape} should hold one value per "
                         f"class, ({classes},)")
    return weight.astype(dtype, copy=False)


def _labels(name: str, x_shape: tuple[int, ...], class_axis: int, target: np.ndarray,
            ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat class indices (ignored rows set to 0) and the mask of rows that count."""
    expected = x_shape[:class_axis] + x_shape[class_axis + 1:]
    if target.shape != expected:
        raise ValueError(f"{name}: target of shape {target.shape} does not fit input of "
                         f"shape {x_shape} (expected target shape {expected})")
    labels = target.reshape(-1)
    valid = labels != ignore_index
    labels = np.where(valid, labels, 0)
    classes = x_shape[class_axis]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{name}: target values must lie in [0, {classes}) (or equal "
                         f"ignore_index={ignore_index}) for input of shape {x_shape}")
    return labels, valid


def _reduce(per_row: np.ndarray, reduction: str, denominator: np.ndarray,
            shape: tuple[int, ...]) -> np.ndarray:
    if reduction == "none":
        return per_row.reshape(shape)
    total = per_row.sum()
    if reduction == "sum":
        return np.asarray(total)
    with np.errstate(invalid="ignore", divide="ignore"):  # nothing counted: NaN, as PyTorch
        return np.asarray(total / denominator)


def _scale(g: np.ndarray, reduction: str, denominator: np.ndarray) -> np.ndarray:
    """d loss / d per-row loss, as a column."""
    if reduction == "none":
        return g.reshape(-1, 1)
    if reduction == "sum":
        return g
    # Nothing counted (every target ignored): every coefficient is 0, and so is the
    # gradient, as in PyTorch.
    return g / (denominator if denominator != 0 else 1)


class CrossEntropy(Op):
    """log_softmax over the classes, then the weighted negative log-likelihood of class
    indices (optionally smoothed) or of class probabilities."""

    name = "cross_entropy"
    saves_inputs = False  # backward reads the log-probabilities it computed

    def forward(self, logits: np.ndarray, *, target: np.ndarray, weight: np.ndarray | None,
                ignore_index: int, reduction: str, label_smoothing: float) -> np.ndarray:
        rows, class_axis = _class_rows(self.name, logits)
        classes = rows.shape[1]
        dtype = rows.dtype
        w = _class_weight(self.name, weight, classes, dtype)
        log_probs = rows - rows.max(axis=-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(axis=-1, keepdims=True))
        eps = np.asarray(label_smoothing, dtype=dtype)
        if target.dtype.kind in "iu":
            labels, valid = _labels(self.name, logits.shape, class_axis, target, ignore_index)
            # a_i = pick_i * onehot(label_i) + smooth_i * w  (w = ones without weights)
            label_weight = valid.astype(dtype) if w is None else w[labels] * valid
            pick = (1 - eps) * label_weight
            per_row = -pick * log_probs[np.arange(len(labels)), labels]
            smooth = None
            if label_smoothing:
                smooth = (eps / classes) * valid.astype(dtype)
                summed = log_probs.sum(axis=-1) if w is None else log_probs @ w
                per_row -= smooth * summed
            denominator = label_weight.sum()
            self.labels, self.pick, self.smooth, self.coef = labels, pick, smooth, None
            out_shape = target.shape
        else:
            if target.dtype.kind != "f" or target.shape != logits.shape:
                raise TypeError(f"{self.name}: target must hold integer class indices, or "
                                f"class probabilities of the input's shape {logits.shape}; "
                                f"got a {target.dtype} target of shape {target.shape}")
            coef = np.moveaxis(target, class_axis, -1).reshape(-1, classes).astype(dtype)
            if label_smoothing:
                coef = coef * (1 - eps) + eps / classes
            if w is not None:
                coef = coef * w
            per_row = -np.einsum("ij,ij->i", coef, log_probs)
            denominator = np.asarray(len(rows), dtype=dtype)
            self.coef = coef
            out_shape = logits.shape[:class_axis] + logits.shape[class_axis + 1:]
        self.log_probs, self.w, self.denominator = log_probs, w, denominator
        self.reduction, self.shape, self.class_axis = reduction, logits.shape, class_axis
        return _reduce(per_row, reduction, denominator, out_shape)

    def backward(self, g: np.ndarray) -> Grads:
        # d loss_i / d x_i = p_i * sum_c a_ic - a_i
        grad = np.exp(self.log_probs)
        if self.coef is not None:
            grad *= self.coef.sum(axis=-1, keepdims=True)
            grad -= self.coef
        else:
            total = self.pick
            if self.smooth is not None:
                classes = grad.shape[1]
                total = total + self.smooth * (classes if self.w is None else self.w.sum())
            grad *= total[:, None]
            grad[np.arange(len(self.labels)), self.labels] -= self.pick
            if self.smooth is not None:
                grad -= self.smooth[:, None] if self.w is None else np.outer(self.smooth,
                                                                             self.w)
        grad *= _scale(g, self.reduction, self.denominator)
        return (_back_to_input(grad, self.shape, self.class_axis),)


class NLLLoss(Op):
    """The weighted negative log-likelihood of class indices, read off log-probabilities."""

    name = "nll_loss"
    saves_inputs = False  # the gradient is a scatter of the weights: no values needed

    def forward(self, log_probs: np.ndarray, *, target: np.ndarray,
                weight: np.ndarray | None, ignore_index: int, reduction: str) -> np.ndarray:
        rows, class_axis = _class_rows(self.name, log_probs)
        w = _class_weight(self.name, weight, rows.shape[1], rows.dtype)
        labels, valid = _labels(self.name, log_probs.shape, class_axis, target, ignore_index)
        label_weight = valid.astype(rows.dtype) if w is None else w[labels] * valid
        per_row = -label_weight * rows[np.arange(len(labels)), labels]
        denominator = label_weight.sum()
        self.labels, self.label_weight, self.denominator = labels, label_weight, denominator
        self.reduction, self.shape, self.class_axis = reduction, log_probs.shape, class_axis
        self.rows_shape, self.dtype = rows.shape, rows.dtype
        return _reduce(per_row, reduction, denominator, target.shape)

    def backward(self, g: np.ndarray) -> Grads:
        grad = np.zeros(self.rows_shape, dtype=self.dtype)
        scale = np.broadcast_to(_scale(g, self.reduction, self.denominator),
                                (len(self.labels), 1))[:, 0]
        grad[np.arange(len(self.labels)), self.labels] = -self.label_weight * scale
        return (_back_to_input(grad, self.shape, self.class_axis),)


class MSELoss(Op):
    """Squared differences, averaged (``mean``), summed or kept (``none``)."""

    name = "mse_loss"

    def forward(self, x: np.ndarray, target: np.ndarray, *, reduction: str) -> np.ndarray:
        self.diff = x - target
        self.reduction = reduction
        squared = self.diff * self.diff
        if reduction == "none":
            return squared
        total = squared.sum()
        return np.asarray(total if reduction == "sum" else total / squared.size)

    def backward(self, g: np.ndarray) -> Grads:
        # d (x - t)^2 = 2 (x - t) dx - 2 (x - t) dt
        scale = g if self.reduction != "mean" else g / self.diff.size
        grad = self.diff * (2 * scale).astype(self.diff.dtype, copy=False)
        return (grad if self.needs_input_grad[0] else None,
                -grad if self.needs_input_grad[1] else None)


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got "
                         f"{reduction!r}")


def _weight_array(weight: Tensor | np.ndarray | None) -> np.ndarray | None:
    return None if weight is None else array_of(weight)


def cross_entropy(input: Tensor, target: Tensor | np.ndarray,  # noqa: A002 (PyTorch's names)
                  weight: Tensor | np.ndarray | None = None, *, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits against class indices or class probabilities.

    ``weight`` (C,) rescales each class; rows whose target is ``ignore_index`` count for
    nothing; ``label_smoothing`` in [0, 1] mixes the target with the uniform distribution.
    With ``reduction="mean"`` the sum is divided by the summed weights of the counted
    targets (by the number of rows for probability targets), as in PyTorch.

    Shape: input (C,), (N, C) or (N, C, d1, ...); target () / (N,) / (N, d1, ...) of
    integers, or probabilities of the input's shape; out () or, with ``reduction="none"``,
    the target's shape without the class dim.
    """
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got "
                         f"{label_smoothing}")
    return CrossEntropy.apply(input, target=array_of(target), weight=_weight_array(weight),
                              ignore_index=ignore_index, reduction=reduction,
                              label_smoothing=float(label_smoothing))


def nll_loss(input: Tensor, target: Tensor | np.ndarray,  # noqa: A002
             weight: Tensor | np.ndarray | None = None, *, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices, given log-probabilities (the output of
    ``log_softmax``); weights, ``ignore_index`` and ``reduction`` as in
    :func:`cross_entropy`.

    Shape: input (C,), (N, C) or (N, C, d1, ...); target () / (N,) / (N, d1, ...).
    """
    _check_reduction("nll_loss", reduction)
    target_data = array_of(target)
    if target_data.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold integer class indices, got dtype "
                        f"{target_data.dtype}")
    return NLLLoss.apply(input, target=target_data, weight=_weight_array(weight),
                         ignore_index=ignore_index, reduction=reduction)


def mse_loss(input: Tensor, target: Tensor | np.ndarray | float,  # noqa: A002
             *, reduction: str = "mean") -> Tensor:
    """Mean (or summed, or elementwise) squared error; input and target broadcast.

    Shape: input and target broadcastable; out () or, with ``reduction="none"``, the
    broadcast shape.
    """
    _check_reduction("mse_loss", reduction)
    if not isinstance(target, Node):
        target = input._wrap(np.asarray(target, dtype=input.dtype))
    return MSELoss.apply(input, target, reduction=reduction)
