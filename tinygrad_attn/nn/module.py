"""Module and Parameter: the containers that give every weight a name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from tinygrad_attn import engine
from tinygrad_attn.tensor import Tensor

# Bumped whenever any module gains a parameter or sub-module, so that a root module
# knows when its cached names are stale.
_structure_version = 0


class Parameter(Tensor):
    """A tensor that is a module's weight: it requires grad, and is found by
    ``Module.parameters()``."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data.data if isinstance(data, Tensor) else data,
                         requires_grad=requires_grad)


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of layers. Assigning a Parameter or a Module to an attribute registers
    it; ``model(x)`` runs ``forward`` with every op labelled by the module's path."""

    _call_depth = 0  # how many module calls are running (0: the next call is a root)

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_path", "")
        object.__setattr__(self, "_named_at", -1)

    def __setattr__(self, name: str, value: Any) -> None:
        global _structure_version
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attributes")
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
            _structure_version += 1
        elif isinstance(value, Module):
            self._modules[name] = value
            _structure_version += 1
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """A constant array that moves with the module (``to(dtype)``) but is not trained."""
        self.__setattr__(name, array)
        self._buffers[name] = array

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if Module._call_depth == 0 and self._named_at != _structure_version:
            self._assign_names()
        # engine.scope(), inlined: a module call is on the hot path of small models.
        outer_scope, engine._current_scope = engine._current_scope, self._path
        Module._call_depth += 1
        try:
            return self.forward(*args, **kwargs)
        finally:
            Module._call_depth -= 1
            engine._current_scope = outer_scope

    def _assign_names(self) -> None:
        """Give every sub-module its path and every parameter its full name (for
        pictures and error messages)."""
        for path, module in self.named_modules():
            object.__setattr__(module, "_path", path)
            # Sub-modules are named too: calling one directly must not rename (shorten)
            # the names the root gave its parameters.
            object.__setattr__(module, "_named_at", _structure_version)
        for name, param in self.named_parameters():
            param.name = name

    # ---- traversal ----
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        stack: list[tuple[str, Module]] = [(prefix, self)]
        seen: set[int] = set()
        while stack:
            path, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield path, module
            children = list(module._modules.items())
            for name, child in reversed(children):
                stack.append((f"{path}.{name}" if path else name, child))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        for path, module in self.named_modules():
            for name, param in module._parameters.items():
                if param is not None and id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{path}.{name}" if path else name), param

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- modes and gradients ----
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    # ---- dtype ----
    def to(self, dtype: Any) -> Module:
        """Cast every parameter and buffer to ``dtype`` in place (float32 is the default)."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"to: parameters must stay floating point, got {dtype}")
        for module in self.modules():
            for p in module._parameters.values():
                p.data = p.data.astype(dtype, copy=False)
                p.grad = None if p.grad is None else p.grad.astype(dtype)
            for name, buffer in list(module._buffers.items()):
                if buffer.dtype.kind == "f":
                    module.register_buffer(name, buffer.astype(dtype))
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    # ---- state ----
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter by its dotted name, as numpy copies."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state_dict: Mapping[str, Any],
                        strict: bool = True) -> IncompatibleKeys:
        """Copy values into the existing parameters, keeping their dtype.

        All or nothing: every key and shape is checked before anything is copied, so an
        error (a missing or unexpected key with ``strict``, a wrong shape in any mode)
        leaves every parameter as it was.
        """
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in params]
        if strict and (missing or unexpected):
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys "
                           f"{unexpected}")
        staged = []
        for name, param in params.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            array = value.data if isinstance(value, Tensor) else np.asarray(value)
            if array.shape != param.shape:
                raise ValueError(f"load_state_dict: {name} has shape {array.shape} in the "
                                 f"state dict but {param.shape} in the model")
            if array.dtype.kind not in "fiu":
                raise TypeError(f"load_state_dict: {name} holds {array.dtype} values, not "
                                f"numbers")
            staged.append((param, array.astype(param.dtype, copy=True)))
        for param, array in staged:
            param.data = array
        return IncompatibleKeys(missing, unexpected)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return lines[0] + (")" if len(lines) == 1 else "\n" + "\n".join(lines[1:]) + "\n)")

    def extra_repr(self) -> str:
        return ""


class ModuleList(Module):
    """Sub-modules held in order and named by position: ``layers.0``, ``layers.1``, ..."""

    def __init__(self, modules: list[Module] | None = None) -> None:
        super().__init__()
        for module in modules or []:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))
