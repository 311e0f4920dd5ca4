"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tinygrad_attn.optim.optimizer import Optimizer, ParamGroup
from tinygrad_attn.tensor import Tensor


class SGD(Optimizer):
    """SGD as ``torch.optim.SGD`` (its single-tensor rule), per parameter with gradient g::

        g = g + weight_decay * p                       (if weight_decay)
        buf = g  (first step),  else  buf = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf  (nesterov)  or  g = buf      (if momentum)
        p = p - lr * g

    ``state[p]["momentum_buffer"]`` holds ``buf`` (only when momentum is used).
    """

    _state_keys = frozenset({"momentum_buffer"})

    def __init__(self, params: Iterable[Tensor] | Iterable[ParamGroup], lr: float = 1e-3,
                 momentum: float = 0, dampening: float = 0, weight_decay: float = 0,
                 nesterov: bool = False) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    def _check_hyperparameters(self, group: Mapping[str, Any], where: str) -> None:
        lr, momentum, decay = group.get("lr"), group.get("momentum"), group.get("weight_decay")
        for key, value in (("learning rate", lr), ("momentum value", momentum),
                           ("weight_decay value", decay), ("dampening", group.get("dampening"))):
            if value is not None and not value >= 0:  # `not >=` also catches NaN
                raise ValueError(f"SGD: Invalid {key}: {value}{where}")
        if group.get("nesterov") and (not momentum > 0 or group.get("dampening") != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum and zero "
                             f"dampening{where}")

    def step(self) -> None:
        """Update every parameter that has a gradient, in place and in its own dtype."""
        for group, params in self._groups_with_grads():
            lr, weight_decay = float(group["lr"]), float(group["weight_decay"])
            momentum, dampening = float(group["momentum"]), float(group["dampening"])
            for p in params:
                g = p.grad
                if weight_decay != 0:
                    g = g + weight_decay * p.data
                if momentum != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = g.copy()
                    else:
                        # The buffer belongs to this optimizer alone: update it in place.
                        buf *= momentum
                        buf += (1 - dampening) * g
                    g = g + momentum * buf if group["nesterov"] else buf
                p.data -= lr * g
                p._bump_version()
