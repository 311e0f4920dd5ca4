"""The optimizer base class: parameter groups, gradient checks, zero_grad and the
PyTorch-layout ``state_dict``/``load_state_dict`` that every optimizer shares."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tinygrad_attn.tensor import Tensor

ParamGroup = dict[str, Any]

# Options of PyTorch's optimizers that only choose an implementation (or a variant we do not
# have). A state dict saved by PyTorch carries them in every group; loading accepts each one
# at the value that means "the plain algorithm" and drops it, and refuses any other value.
_TORCH_ONLY_OPTIONS: dict[str, tuple[Any, ...]] = {
    "maximize": (False,), "foreach": (None, False, True), "fused": (None, False),
    "capturable": (False,), "differentiable": (False,),
}


class Optimizer:
    """Base class of the optimizers, as ``torch.optim.Optimizer``.

    ``params`` is an iterable of tensors, or of dicts (parameter groups) each holding
    ``"params"`` and any hyperparameters that differ from ``defaults``. ``param_groups`` is
    the list of those dicts with every default filled in; edit ``group["lr"]`` to change a
    learning rate. ``state`` maps each parameter (the tensor itself) to its buffers.

    Subclasses set ``_state_keys`` (the buffers a parameter's state may hold) and define
    ``_check_hyperparameters`` and ``step``.
    """

    _state_keys: frozenset[str] = frozenset()

    def __init__(self, params: Iterable[Tensor] | Iterable[ParamGroup],
                 defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self._check_hyperparameters(self.defaults, "")
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params should be an iterable of tensors "
                            f"or of dicts, got a single Tensor of shape {params.shape}; wrap "
                            f"it in a list")
        groups = _as_list(params, type(self).__name__, "params")
        if not groups:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        self.param_groups: list[ParamGroup] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])

    # ---- parameter groups ----
    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group: a dict with ``"params"`` and optional hyperparameters (the rest
        come from ``defaults``). A parameter may belong to one group only."""
        name = type(self).__name__
        if not isinstance(param_group, Mapping):
            raise TypeError(f"{name}: a parameter group must be a dict, got "
                            f"{type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry, got keys "
                             f"{sorted(param_group)}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else _as_list(params, name, "params")
        for p in params:
            if not isinstance(p, Tensor):
                hint = ("; pass model.parameters(), not named_parameters()"
                        if isinstance(p, tuple) else "")
                raise TypeError(f"{name}: can only optimize Tensors, but one of the params "
                                f"is {type(p).__name__}{hint}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (shape "
                                 f"{p.shape}); optimize the leaves it was computed from")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter group holds the same parameter twice")
        group = {"params": params}
        for key, value in param_group.items():
            if key != "params":
                group[key] = value
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_hyperparameters(group, f" (parameter group {len(self.param_groups)})")
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter "
                             f"group")
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: Mapping[str, Any], where: str) -> None:
        """Raise ValueError for a hyperparameter out of range (each optimizer's rule)."""

    # ---- gradients ----
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient: ``grad = None`` by default, or fill the
        existing gradient arrays with zeros in place (``set_to_none=False``)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    # The leaf owns its grad array (the engine accumulates into it in place
                    # too), so zeroing it in place touches no one else's array.
                    p.grad.fill(0)

    def _groups_with_grads(self) -> list[tuple[ParamGroup, list[Tensor]]]:
        """Each group with its parameters that have a gradient, after checking every
        gradient of every group, so a bad one stops the step before any parameter moves."""
        ready = []
        for group in self.param_groups:
            params = []
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                where = f" ({p.name})" if p.name else ""
                if not isinstance(g, np.ndarray) or g.shape != p.shape:
                    shape = getattr(g, "shape", type(g).__name__)
                    raise ValueError(f"{type(self).__name__}.step: gradient of shape {shape} "
                                     f"for a parameter of shape {p.shape}{where}")
                if g.dtype != p.dtype:
                    raise TypeError(f"{type(self).__name__}.step: {g.dtype} gradient for a "
                                    f"{p.dtype} parameter of shape {p.shape}{where}; "
                                    f"gradients must have their parameter's dtype")
                params.append(p)
            ready.append((group, params))
        return ready

    def step(self) -> None:
        """Update every parameter that has a gradient (each optimizer defines its rule)."""
        raise NotImplementedError(f"{type(self).__name__} defines no update rule")

    # ---- saving and resuming ----
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout::

            {"state": {index: {"momentum_buffer" | "step" | "exp_avg" | ...: array}},
             "param_groups": [{"lr": ..., ..., "params": [index, ...]}]}

        Parameters are numbered 0, 1, ... in group order; ``state`` holds only the
        parameters that have state. Arrays are copies (PyTorch returns references), so
        the dict keeps the moment it was taken even if training goes on.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: v.copy() if isinstance(v, np.ndarray) else v
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Take hyperparameters and buffers from ``state_dict`` (from :meth:`state_dict`,
        from :func:`tinygrad_attn.load`, or from a PyTorch optimizer converted to NumPy).

        The saved groups must match ``param_groups`` in number and sizes; the saved
        parameters are matched to ours in order. All-or-nothing: anything that does not fit
        (a group size, a buffer's shape, an unknown buffer, a bad hyperparameter) raises an
        error naming it, and the optimizer is left exactly as it was. Buffers are copied and
        cast to their parameter's dtype; ``step`` becomes a 0-d float32 array, as PyTorch's.
        """
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{name}: expected a dict, got {type(state_dict).__name__}")
        if set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}: expected the keys 'state' and 'param_groups', got "
                             f"{sorted(map(str, state_dict))}")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not isinstance(saved_state, Mapping):
            raise TypeError(f"{name}: 'param_groups' must be a list and 'state' a dict")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the state dict has {len(saved_groups)} parameter "
                             f"groups, this optimizer {len(self.param_groups)}")
        by_index: dict[Any, Tensor] = {}
        new_groups = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, Mapping) or "params" not in saved:
                raise ValueError(f"{name}: parameter group {i} is not a dict with 'params'")
            indices = list(saved["params"])
            if len(indices) != len(group["params"]):
                raise ValueError(f"{name}: parameter group {i} has {len(indices)} parameters "
                                 f"in the state dict and {len(group['params'])} here")
            for index, p in zip(indices, group["params"]):
                if (isinstance(index, bool) or not isinstance(index, numbers.Integral)
                        or int(index) in by_index):
                    raise ValueError(f"{name}: parameter group {i} lists index {index!r}, "
                                     f"which is not an int or appears twice")
                by_index[int(index)] = p
            new_groups.append(self._restored_group(saved, group, f"{name}: parameter "
                                                   f"group {i}"))
        new_state: dict[Tensor, dict[str, Any]] = {}
        for index, buffers in saved_state.items():
            p = (by_index.get(int(index)) if isinstance(index, numbers.Integral)
                 and not isinstance(index, bool) else None)
            if p is None:
                raise ValueError(f"{name}: 'state' has an entry for parameter {index!r}, but "
                                 f"the groups list {len(by_index)} parameters "
                                 f"({sorted(by_index)})")
            group = next(g for g in new_groups if any(q is p for q in g["params"]))
            new_state[p] = self._restored_buffers(buffers, p, group,
                                                  f"{name}: state of parameter {index}")
        self.param_groups, self.state = new_groups, new_state

    def _restored_group(self, saved: Mapping[str, Any], group: ParamGroup,
                        where: str) -> ParamGroup:
        restored: ParamGroup = {}
        for key, value in saved.items():
            if key == "params":
                continue
            if key in _TORCH_ONLY_OPTIONS:
                if not any(value is v or value == v for v in _TORCH_ONLY_OPTIONS[key]):
                    raise ValueError(f"{where}: {key}={value!r} is not supported here")
                continue
            restored[key] = _plain(value)
        missing = sorted(set(self.defaults) - set(restored))
        if missing:
            raise ValueError(f"{where} lacks the hyperparameters {missing}")
        self._check_hyperparameters(restored, f" ({where})")
        return {**restored, "params": group["params"]}

    def _restored_buffers(self, buffers: Any, p: Tensor, group: ParamGroup,
                          where: str) -> dict[str, Any]:
        if not isinstance(buffers, Mapping):
            raise ValueError(f"{where} must be a dict, got {type(buffers).__name__}")
        unknown = sorted(set(map(str, buffers)) - self._state_keys)
        if unknown:
            raise ValueError(f"{where} holds {unknown}, which {type(self).__name__} does "
                             f"not keep (it keeps {sorted(self._state_keys)})")
        restored = {}
        for key, value in buffers.items():
            if value is None:  # PyTorch's SGD may store an unset momentum buffer as None
                continue
            array = np.asarray(value.data if isinstance(value, Tensor) else value)
            if array.dtype.kind not in "iuf":
                raise TypeError(f"{where}: {key!r} holds {array.dtype} values")
            if key == "step":
                if array.size != 1:
                    raise ValueError(f"{where}: 'step' has shape {array.shape}, expected ()")
                restored[key] = np.array(array.reshape(()), dtype=np.float32)
                continue
            if array.shape != p.shape:
                raise ValueError(f"{where}: {key!r} has shape {array.shape}, its parameter "
                                 f"{p.shape}")
            restored[key] = array.astype(p.dtype, copy=True)
        self._check_buffers(restored, group, where)
        return restored

    def _check_buffers(self, buffers: dict[str, Any], group: ParamGroup, where: str) -> None:
        """Raise ValueError if a restored state lacks a buffer the update rule needs."""


def _as_list(values: Any, name: str, what: str) -> list[Any]:
    if isinstance(values, (set, frozenset)):
        raise TypeError(f"{name}: {what} must be an ordered collection (a list), not a set: "
                        f"a set's order changes between runs")
    try:
        return list(values)
    except TypeError:
        raise TypeError(f"{name}: {what} should be an iterable of tensors or of dicts, got "
                        f"{type(values).__name__}") from None


def _plain(value: Any) -> Any:
    """A hyperparameter as a Python number: a NumPy scalar or 0-d array (what a checkpoint
    may hand back) would otherwise turn float32 updates into float64 ones."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0:
        return value.item()
    return value
