"""Learning-rate schedulers with ``torch.optim.lr_scheduler``'s signatures and formulas.

Each scheduler writes ``group["lr"]`` of its optimizer's parameter groups. As in PyTorch,
creating one (with ``last_epoch=-1``) stores ``initial_lr`` in every group and sets the
epoch-0 rate; call ``scheduler.step()`` after ``optimizer.step()``. The updates are
PyTorch's recursive ("chainable") ones, which scale the current ``group["lr"]``, so the
numbers are PyTorch's to the last bit of round-off.
"""

from __future__ import annotations

import math
import numbers
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from tinygrad_attn.optim.optimizer import Optimizer

__all__ = ["CosineAnnealingLR", "LRScheduler", "LambdaLR", "LinearLR", "StepLR"]


class LRScheduler:
    """Base class: holds the optimizer, ``base_lrs`` (each group's ``initial_lr``),
    ``last_epoch`` (steps taken; -1 before the constructor's first step) and the rates it
    set last (:meth:`get_last_lr`). Subclasses define :meth:`get_lr` (the next rates, from
    the current ones) and ``_get_closed_form_lr`` (the rates at ``last_epoch``)."""

    _hyperparameters: tuple[str, ...] = ()  # the constructor arguments state_dict keeps

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an "
                            f"Optimizer")
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) \
                or last_epoch < -1:
            raise ValueError(f"{type(self).__name__}: last_epoch must be an int >= -1, got "
                             f"{last_epoch!r}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   f"when resuming a scheduler with last_epoch >= 0: load the "
                                   f"optimizer's state dict first")
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._step_count = 0
        self._is_initial = True  # the constructor's step sets the epoch-0 rates
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The rates for ``last_epoch`` (already advanced by :meth:`step`)."""
        raise NotImplementedError(f"{type(self).__name__} defines no schedule")

    def get_last_lr(self) -> list[float]:
        """The learning rate of each parameter group, as last set by this scheduler."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or step) and write the new rates into the optimizer.
        ``epoch`` (deprecated in PyTorch too) jumps to that epoch by the closed form."""
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            warnings.warn("The epoch parameter in `scheduler.step()` was not necessary and is "
                          "being deprecated where possible. Please use `scheduler.step()` to "
                          "step the scheduler.", UserWarning, stacklevel=2)
            self.last_epoch = int(epoch)
            values = self._get_closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()

    # ---- saving and resuming ----
    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state, with PyTorch's keys: its constructor arguments,
        ``base_lrs``, ``last_epoch``, ``_step_count``, ``_last_lr`` (and two flags PyTorch
        keeps, always False between calls). Plain numbers and lists only."""
        state = {key: getattr(self, key) for key in self._hyperparameters}
        state.update(base_lrs=list(self.base_lrs), last_epoch=self.last_epoch,
                     _step_count=self._step_count, _is_initial=False,
                     _get_lr_called_within_step=False, _last_lr=list(self._last_lr))
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (or PyTorch's scheduler state). Checked
        first, all-or-nothing: a missing or unknown key, or a list whose length is not the
        number of parameter groups, raises ValueError and changes nothing."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{name}: expected a dict, got {type(state_dict).__name__}")
        expected = set(LRScheduler.state_dict(self))  # LambdaLR handles its lr_lambdas
        missing = sorted(expected - set(state_dict) - {"_is_initial",
                                                       "_get_lr_called_within_step"})
        unknown = sorted(set(map(str, state_dict)) - expected)
        if missing or unknown:
            raise ValueError(f"{name}: missing keys {missing}, unexpected keys {unknown}")
        groups = len(self.optimizer.param_groups)
        for key in ("base_lrs", "_last_lr"):
            value = state_dict[key]
            if not isinstance(value, (list, tuple)) or len(value) != groups:
                raise ValueError(f"{name}: {key!r} must list one rate per parameter group "
                                 f"({groups}), got {value!r}")
        for key in ("last_epoch", "_step_count"):
            value = state_dict[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name}: {key!r} must be an int, got {value!r}")
        for key in ("base_lrs", "_last_lr"):
            for lr in state_dict[key]:
                if not _is_real(lr):
                    raise ValueError(f"{name}: {key!r} holds {lr!r}, not a number")
        for key in self._hyperparameters:
            if not _is_real(state_dict[key]):
                raise ValueError(f"{name}: {key!r} must be a number, got {state_dict[key]!r}")
        for key in self._hyperparameters:
            setattr(self, key, _number(state_dict[key]))
        self.base_lrs = [_number(lr) for lr in state_dict["base_lrs"]]
        self._last_lr = [_number(lr) for lr in state_dict["_last_lr"]]
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["_step_count"])


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(last_epoch)``; ``lr_lambda`` is one function or a list
    with one per parameter group. Its state dict leaves the functions out (as PyTorch's:
    ``lr_lambdas`` holds None for each plain function, the attributes of a callable
    object otherwise): recreate the scheduler with the same functions, then load."""

    def __init__(self, optimizer: Optimizer,
                 lr_lambda: Callable[[int], float] | list[Callable[[int], float]],
                 last_epoch: int = -1) -> None:
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(optimizer.param_groups):
                raise ValueError(f"LambdaLR: Expected {len(optimizer.param_groups)} "
                                 f"lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"LambdaLR: lr_lambda must be callable, got "
                                f"{type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas,
                                                                     self.base_lrs)]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else
                               dict(vars(fn)) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        state = dict(state_dict)
        lambdas = state.pop("lr_lambdas", None)
        if not isinstance(lambdas, (list, tuple)) or len(lambdas) != len(self.lr_lambdas):
            raise ValueError(f"LambdaLR.load_state_dict: 'lr_lambdas' must list one entry "
                             f"per parameter group ({len(self.lr_lambdas)}), got {lambdas!r}")
        for i, attributes in enumerate(lambdas):
            if attributes is not None and (not isinstance(attributes, Mapping) or isinstance(
                    self.lr_lambdas[i], types.FunctionType)):
                raise ValueError(f"LambdaLR.load_state_dict: lr_lambdas[{i}] holds "
                                 f"{attributes!r}, which does not fit {self.lr_lambdas[i]!r}")
        super().load_state_dict(state)
        for fn, attributes in zip(self.lr_lambdas, lambdas):
            if attributes is not None:
                vars(fn).update(attributes)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs:
    ``lr = base_lr * gamma ** (last_epoch // step_size)``."""

    _hyperparameters = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) \
                or step_size <= 0:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma for group in groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the rate linearly from ``start_factor * base_lr`` to ``end_factor * base_lr``
    over ``total_iters`` epochs, then keep it:
    ``lr = base_lr * (start + (end - start) * min(total_iters, last_epoch) / total_iters)``."""

    _hyperparameters = ("start_factor", "end_factor", "total_iters")

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("LinearLR: Starting multiplicative factor expected to be greater "
                             f"than 0 and less or equal to 1, got {start_factor}.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError(f"LinearLR: Ending multiplicative factor expected to be between "
                             f"0 and 1, got {end_factor}.")
        if isinstance(total_iters, bool) or not isinstance(total_iters, numbers.Integral) \
                or total_iters <= 0:
            raise ValueError(f"LinearLR: total_iters must be a positive int, got "
                             f"{total_iters!r}")
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = int(total_iters)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [group["lr"] * self.start_factor for group in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return [group["lr"] for group in groups]
        # ratio of consecutive factors: (s + (e-s) k/n) / (s + (e-s) (k-1)/n)
        span = self.end_factor - self.start_factor
        ratio = 1.0 + span / (self.total_iters * self.start_factor
                              + (self.last_epoch - 1) * span)
        return [group["lr"] * ratio for group in groups]

    def _get_closed_form_lr(self) -> list[float]:
        span = self.end_factor - self.start_factor
        return [base_lr * (self.start_factor + span * min(self.total_iters, self.last_epoch)
                           / self.total_iters) for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing without restarts:
    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2``,
    reached as PyTorch does, by the ratio of consecutive cosine factors (past ``T_max`` the
    rate climbs back, as PyTorch's)."""

    _hyperparameters = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        if isinstance(T_max, bool) or not isinstance(T_max, numbers.Integral) or T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive int, got {T_max!r}")
        self.T_max, self.eta_min = int(T_max), eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        t, n, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [group["lr"] for group in groups]
        if self._step_count == 1 and t > 0:  # created with last_epoch >= 0: jump there
            return [eta_min + (base_lr - eta_min) * (1 + math.cos(t * math.pi / n)) / 2
                    for base_lr in self.base_lrs]
        if (t - 1 - n) % (2 * n) == 0:  # leaving the trough, where the ratio is 0/0
            return [group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / n)) / 2
                    for base_lr, group in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / n)) / (1 + math.cos(math.pi * (t - 1) / n))
                * (group["lr"] - eta_min) + eta_min for group in groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


def _is_real(value: Any) -> bool:
    return isinstance(_number(value), numbers.Real) and not isinstance(value, bool)


def _number(value: Any) -> Any:
    """A Python number for a NumPy scalar or 0-d array a checkpoint may hand back."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 \
        else value
