"""Module and Parameter: the containers that give every weight a name, and the
containers of modules (Sequential, ModuleList, ModuleDict)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from tinygrad_attn import engine
from tinygrad_attn.tensor import Tensor

# Bumped whenever any module gains a parameter or sub-module, so that a root module
# knows when its cached names are stale.
_structure_version = 0


class Parameter(Tensor):
    """A tensor that is a module's weight: it requires grad, and is found by
    ``Module.parameters()``. ``Parameter(tensor)`` shares the tensor's array."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty(0, dtype=np.float32)
        super().__init__(data.data if isinstance(data, Tensor) else data,
                         requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class StateDictError(RuntimeError, ValueError):
    """A state dict that does not fit the module (PyTorch raises RuntimeError)."""


def check_device(owner: str, device: Any) -> None:
    """Accept ``device=None`` or ``"cpu"``, as PyTorch's layers do; refuse the rest."""
    if device is not None and str(device) != "cpu":
        raise ValueError(f"{owner}: device {device!r} is not available: tinygrad_attn "
                         f"runs on the CPU only (use device='cpu' or leave it out)")


class Module:
    """Base class of layers. Assigning a Parameter or a Module to an attribute registers
    it; ``model(x)`` runs ``forward`` with every op labelled by the module's path."""

    _call_depth = 0  # how many module calls are running (0: the next call is a root)

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_path", "")
        object.__setattr__(self, "_named_at", -1)

    # ---- registration ----
    def __setattr__(self, name: str, value: Any) -> None:
        global _structure_version
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attributes")
        if isinstance(value, Parameter):
            self._forget(name)
            self._parameters[name] = value
            _structure_version += 1
        elif isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
            _structure_version += 1
        elif name in self._buffers:
            # As in PyTorch: assigning to a buffer's name replaces the buffer.
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"{type(self).__name__}: cannot assign "
                                f"{type(value).__name__} to buffer {name!r} (a Tensor or "
                                f"None is required)")
            self._buffers[name] = value
        else:
            self._forget(name)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._forget(name)
        object.__delattr__(self, name)

    def _forget(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def register_buffer(self, name: str, tensor: Tensor | None,
                        persistent: bool = True) -> None:
        """A tensor that belongs to the module but is not trained (a mask, a table of
        positions): moved by ``to(dtype)``, and in ``state_dict`` when ``persistent``."""
        global _structure_version
        if "_buffers" not in self.__dict__:
            raise AttributeError("register_buffer: call Module.__init__() first")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: buffer name must be a non-empty string "
                           f"without '.', got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: cannot assign {type(tensor).__name__} "
                            f"object to buffer {name!r} (a Tensor or None is required)")
        if name in self.__dict__ and name not in self._buffers:
            raise KeyError(f"register_buffer: attribute {name!r} already exists")
        self._forget(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, tensor)
        _structure_version += 1

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: cannot assign {type(param).__name__} "
                            f"object to parameter {name!r} (a Parameter or None is "
                            f"required)")
        if param is None:
            self._forget(name)
            self._parameters[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module")
        if module is None:
            self._forget(name)
            self._modules[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, module)

    register_module = add_module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the "
                                  f"required \"forward\" function")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if Module._call_depth == 0 and self._named_at != _structure_version:
            self._assign_names()
        outer_scope = engine.set_scope(self._path)
        Module._call_depth += 1
        try:
            return self.forward(*args, **kwargs)
        finally:
            Module._call_depth -= 1
            engine.set_scope(outer_scope)

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
    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """This module and every sub-module, depth first, each once (by default)."""
        seen: set[int] = set() if memo is None else memo
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            path, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield path, module
            children = [(n, c) for n, c in module._modules.items() if c is not None]
            for name, child in reversed(children):
                stack.append((f"{path}.{name}" if path else name, child))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Any]]:
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else iter([(prefix, self)]))
        seen: set[int] = set()
        for path, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{path}.{name}" if path else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Every parameter by its dotted name; a shared one once, under its first name."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module (children first), then on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients ----
    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise ValueError(f"train: training mode is expected to be boolean, got "
                             f"{mode!r}")
        object.__setattr__(self, "training", mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (or, with ``set_to_none=False``, zero it)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    # ---- dtype and device ----
    def to(self, *args: Any, **kwargs: Any) -> Module:
        """``to(dtype)``, ``to("cpu")``, ``to("cpu", dtype)``, ``to(device=, dtype=)``:
        cast every floating-point parameter and buffer in place; the device is always
        the CPU."""
        device, dtype = None, None
        for arg in args:
            if isinstance(arg, str):
                device = arg
            else:
                dtype = arg
        for key, value in kwargs.items():
            if key == "device":
                device = value
            elif key == "dtype":
                dtype = value
            elif key != "non_blocking":
                raise TypeError(f"to() got an unexpected keyword argument {key!r}")
        check_device(f"{type(self).__name__}.to", device)
        if dtype is None:
            return self
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got "
                            f"desired dtype={dtype}")
        for module in self.modules():
            for p in module._parameters.values():
                if p is not None and p.data.dtype.kind == "f":
                    p.data = p.data.astype(dtype, copy=False)
                    p.grad = None if p.grad is None else p.grad.astype(dtype)
                    p._bump_version()
            for b in module._buffers.values():
                if b is not None and b.data.dtype.kind == "f":
                    b.data = b.data.astype(dtype, copy=False)
                    b._bump_version()
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    def cpu(self) -> Module:
        return self

    # ---- state ----
    def _state_tensors(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Parameters and persistent buffers, module by module, as PyTorch's
        ``state_dict`` lists them (a tied weight under each of its names)."""
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield prefix + name, b
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_tensors(f"{prefix}{name}.")

    def state_dict(self, *, prefix: str = "", keep_vars: bool = False) -> dict[str, Any]:
        """Parameters and persistent buffers by dotted name, as numpy copies (the tensors
        themselves with ``keep_vars``)."""
        return {name: (t if keep_vars else t.data.copy())
                for name, t in self._state_tensors(prefix)}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> IncompatibleKeys:
        """Copy values into the existing parameters and buffers, keeping their dtype.

        All or nothing: every key and shape is checked before anything is copied, so an
        error (a missing or unexpected key with ``strict``, a wrong shape in any mode)
        leaves every tensor as it was. Returns ``(missing_keys, unexpected_keys)``.
        """
        if assign:
            raise ValueError("load_state_dict: assign=True is not supported; values are "
                             "always copied into the existing tensors")
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        targets = dict(self._state_tensors())
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        owner = type(self).__name__
        if strict and (missing or unexpected):
            raise StateDictError(f"Error(s) in loading state_dict for {owner}: missing "
                                 f"keys {missing}, unexpected keys {unexpected}")
        staged = []
        for name, target in targets.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            array = value.data if isinstance(value, Tensor) else np.asarray(value)
            if array.shape != target.shape:
                raise StateDictError(
                    f"Error(s) in loading state_dict for {owner}: size mismatch for "
                    f"{name}: copying a param with shape {array.shape} from checkpoint, "
                    f"the shape in current model is {target.shape}")
            if array.dtype.kind not in "biuf":
                raise TypeError(f"load_state_dict: {name} holds {array.dtype} values, not "
                                f"numbers")
            staged.append((target, array))
        for target, array in staged:
            # The tensor keeps its array (an optimizer may hold it) and its dtype.
            np.copyto(target.data, array, casting="unsafe")
            target._bump_version()
        return IncompatibleKeys(missing, unexpected)

    # ---- printing ----
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        lines += [f"({name}): {_indent(repr(child))}" for name, child in self._modules.items()]
        if not lines:
            return f"{self._get_name()}()"
        if len(lines) == 1 and not self._modules:
            return f"{self._get_name()}({lines[0]})"
        return f"{self._get_name()}(\n  " + "\n  ".join(lines) + "\n)"


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")


class Sequential(Module):
    """Modules called one after another: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Children are named ``0``, ``1``, ... (or by the keys of a dict passed in).
    Shape: whatever the first module takes -> whatever the last returns.
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def forward(self, input: Any) -> Any:  # noqa: A002 (PyTorch's name)
        for module in self._modules.values():
            input = module(input)
        return input

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(dict(items[index]))
        return items[_position(index, len(items), "Sequential")][1]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


def _position(index: int, length: int, owner: str) -> int:
    if not -length <= index < length:
        raise IndexError(f"{owner}: index {index} is out of range for {length} modules")
    return index % length


class ModuleList(Module):
    """Sub-modules held in order and named by position: ``layers.0``, ``layers.1``, ..."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        for module in modules or []:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index: int | slice) -> Any:
        values = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(values[index])
        return values[_position(index, len(values), "ModuleList")]

    def __setitem__(self, index: int, module: Module) -> None:
        position = _position(index, len(self._modules), "ModuleList")
        self.add_module(str(position), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __repr__(self) -> str:
        """As PyTorch's: runs of identical children are printed once, ``(0-1): 2 x``."""
        groups: list[tuple[int, int, str]] = []
        for i, child in enumerate(self._modules.values()):
            text = repr(child)
            if groups and groups[-1][2] == text:
                groups[-1] = (groups[-1][0], i, text)
            else:
                groups.append((i, i, text))
        if not groups:
            return "ModuleList()"
        lines = [f"({a}): {_indent(t)}" if a == b else f"({a}-{b}): {b - a + 1} x {_indent(t)}"
                 for a, b, t in groups]
        return "ModuleList(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """Sub-modules held by name, in insertion order: ``heads["q"]``."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]
                 | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        items = modules.items() if isinstance(modules, Mapping) else modules
        for name, module in items:
            self.add_module(name, module)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def keys(self) -> list[str]:
        return list(self._modules)

    def values(self) -> list[Module]:
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        return list(self._modules.items())

    def pop(self, key: str) -> Module:
        module = self._modules[key]
        delattr(self, key)
        return module
