"""Adam and AdamW (Kingma & Ba; Loshchilov & Hutter), with AMSGrad."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tinygrad_attn.optim.optimizer import Optimizer, ParamGroup
from tinygrad_attn.tensor import Tensor


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam`` computes it (single-tensor rule), per parameter::

        g = g + weight_decay * p                       (L2; AdamW decays p instead)
        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2;   t += 1
        v_max = max(v_max, v)                          (amsgrad: use v_max for v below)
        p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    ``state[p]`` holds ``step`` (a 0-d float32 array, as PyTorch's), ``exp_avg`` (m),
    ``exp_avg_sq`` (v) and, with amsgrad, ``max_exp_avg_sq``.
    """

    _state_keys = frozenset({"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"})
    _decoupled = False  # AdamW: weight decay shrinks p rather than adding to g

    def __init__(self, params: Iterable[Tensor] | Iterable[ParamGroup], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False) -> None:
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad})

    def _check_hyperparameters(self, group: Mapping[str, Any], where: str) -> None:
        name = type(self).__name__
        for key in ("lr", "eps", "weight_decay"):
            value = group.get(key)
            if value is not None and not value >= 0:  # `not >=` also catches NaN
                label = "learning rate" if key == "lr" else f"{key} value"
                raise ValueError(f"{name}: Invalid {label}: {value}{where}")
        betas = group.get("betas")
        if betas is not None:
            if not isinstance(betas, (tuple, list)) or len(betas) != 2:
                raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got "
                                 f"{betas!r}{where}")
            for i, beta in enumerate(betas):
                if not 0 <= beta < 1:
                    raise ValueError(f"{name}: Invalid beta parameter at index {i}: "
                                     f"{beta}{where}")
        if "decoupled_weight_decay" in group and group["decoupled_weight_decay"] != \
                self._decoupled:
            other = "AdamW" if group["decoupled_weight_decay"] else "Adam"
            raise ValueError(f"{name}: decoupled_weight_decay="
                             f"{group['decoupled_weight_decay']} is {other}'s rule{where}")

    def _restored_group(self, saved: Mapping[str, Any], group: ParamGroup,
                        where: str) -> ParamGroup:
        # PyTorch's groups say which weight-decay rule they used; the class says it here.
        restored = super()._restored_group(saved, group, where)
        restored.pop("decoupled_weight_decay", None)
        return restored

    def _check_buffers(self, buffers: dict[str, Any], group: ParamGroup, where: str) -> None:
        needed = {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if group["amsgrad"]
                                                      else set())
        if buffers and not needed <= set(buffers):
            raise ValueError(f"{where} lacks {sorted(needed - set(buffers))}")

    def step(self) -> None:
        """Update every parameter that has a gradient, in place and in its own dtype."""
        for group, params in self._groups_with_grads():
            lr, eps, weight_decay = (float(group[k]) for k in ("lr", "eps", "weight_decay"))
            beta1, beta2 = (float(b) for b in group["betas"])
            amsgrad = bool(group["amsgrad"])
            for p in params:
                g = p.grad
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {"step": np.zeros((), dtype=np.float32),
                                             "exp_avg": np.zeros_like(p.data),
                                             "exp_avg_sq": np.zeros_like(p.data)}
                state["step"] += 1
                if weight_decay != 0:
                    if self._decoupled:
                        p.data *= 1 - lr * weight_decay
                        p._bump_version()
                    else:
                        g = g + weight_decay * p.data
                # The moment buffers belong to this optimizer alone: updated in place.
                m, v = state["exp_avg"], state["exp_avg_sq"]
                _lerp_(m, g, 1 - beta1)
                v *= beta2
                v += ((1 - beta2) * g) * g  # PyTorch's addcmul order: (value * g) * g
                t = float(state["step"])
                step_size = lr / (1 - beta1**t)
                bias_correction2_sqrt = math.sqrt(1 - beta2**t)
                if amsgrad:
                    if "max_exp_avg_sq" not in state:  # amsgrad switched on mid-run
                        state["max_exp_avg_sq"] = np.zeros_like(p.data)
                    np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                    v = state["max_exp_avg_sq"]
                denom = np.sqrt(v)
                denom /= bias_correction2_sqrt
                denom += eps
                m_hat = np.divide(m, denom, out=denom)  # denom is a scratch array
                m_hat *= step_size
                p.data -= m_hat
                p._bump_version()


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``: before each Adam step
    ``p = p * (1 - lr * weight_decay)`` (the gradient is left alone). PyTorch's default
    ``weight_decay`` is 0.01."""

    _decoupled = True

    def __init__(self, params: Iterable[Tensor] | Iterable[ParamGroup], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``start += weight * (end - start)`` in place, rounded as PyTorch's ``lerp_``: from
    the nearer end, so a weight near 1 loses no precision."""
    if weight < 0.5:
        start += weight * (end - start)
    else:
        diff = np.subtract(end, start)
        diff *= 1 - weight
        np.subtract(end, diff, out=start)
