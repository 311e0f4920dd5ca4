"""Optimizers with PyTorch's update rules. Each updates parameters in place, in their
own dtype, and checks every gradient before changing anything."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from tinygrad_attn.tensor import Tensor


class Optimizer:
    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{type(self).__name__}: parameters must be tensors that "
                                f"require grad")
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr}")
        self.lr = lr
        self.state: dict[int, dict[str, np.ndarray]] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _with_grads(self) -> list[Tensor]:
        """The parameters that have a gradient, after checking every one of them (so a
        bad gradient stops the step before any parameter moves)."""
        ready = []
        for p in self.params:
            if p.grad is None:
                continue
            if p.grad.shape != p.shape:
                raise ValueError(f"{type(self).__name__}.step: gradient of shape "
                                 f"{p.grad.shape} for a parameter of shape {p.shape}"
                                 f"{f' ({p.name})' if p.name else ''}")
            ready.append(p)
        return ready

    def step(self) -> None:
        """Update every parameter that has a gradient (each optimizer defines its rule)."""
        raise NotImplementedError(f"{type(self).__name__} defines no update rule")


class SGD(Optimizer):
    """p -= lr * g, with optional weight decay (added to g) and momentum
    (buf = momentum * buf + (1 - dampening) * g; the first step sets buf = g)."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: momentum {momentum} and weight_decay {weight_decay} "
                             f"must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and zero dampening")
        self.momentum, self.weight_decay = momentum, weight_decay
        self.dampening, self.nesterov = dampening, nesterov

    def step(self) -> None:
        for p in self._with_grads():
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                state = self.state.setdefault(id(p), {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.copy()
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * g
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) as PyTorch computes it:
    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
    p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps).
    ``weight_decay`` is L2 (added to g); AdamW decouples it."""

    decoupled = False

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1) or eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: invalid betas {betas}, eps {eps} or "
                             f"weight_decay {weight_decay}")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def step(self) -> None:
        beta1, beta2 = self.betas
        for p in self._with_grads():
            g = p.grad
            state = self.state.get(id(p))
            if state is None:
                state = self.state[id(p)] = {"step": np.zeros(()),
                                             "exp_avg": np.zeros_like(p.data),
                                             "exp_avg_sq": np.zeros_like(p.data)}
            if self.weight_decay:
                if self.decoupled:
                    p.data *= 1 - self.lr * self.weight_decay
                else:
                    g = g + self.weight_decay * p.data
            state["step"] += 1
            t = int(state["step"])
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * (g * g)
            bias_correction1 = 1 - beta1**t
            bias_correction2_sqrt = math.sqrt(1 - beta2**t)
            denom = np.sqrt(v)
            denom /= bias_correction2_sqrt
            denom += self.eps
            p.data -= (self.lr / bias_correction1) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay before the Adam step
    (PyTorch's default weight_decay is 0.01)."""

    decoupled = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
