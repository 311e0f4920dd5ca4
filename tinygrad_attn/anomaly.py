"""A gradient debugger: find the op whose backward went wrong.

- ``with detect_anomaly():`` records where each op was created and makes a backward
  that produces NaN or Inf raise :class:`AnomalyError`, naming the op, its input shapes
  and the line of user code that created it.
- ``tinygrad_attn.gradcheck.check_recorded_ops`` builds on the call sites recorded here
  to trace a failing gradient check of a whole function to the one op whose backward
  disagrees.

Off, the engine pays one global read per op; the bookkeeping happens only inside the block.
"""

from __future__ import annotations

import contextlib
import linecache
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinygrad_attn import engine
from tinygrad_attn.engine import Op

_PACKAGE = Path(__file__).resolve().parent
# Frames in these files are the machinery of recording an op, never the creation site.
_MACHINERY = (_PACKAGE / "engine.py", _PACKAGE / "tensor.py", _PACKAGE / "ops",
              _PACKAGE / "functions.py",
              Path(contextlib.__file__).resolve())


class AnomalyError(FloatingPointError):
    """A backward pass produced NaN or Inf; the message names the op and where it was
    created."""


@dataclass(frozen=True)
class CallSite:
    """One line of code that led to an op being recorded."""

    filename: str
    lineno: int
    function: str

    @property
    def line(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip()

    def __str__(self) -> str:
        return f'File "{self.filename}", line {self.lineno}, in {self.function}\n    {self.line}'


def _is_machinery(path: Path) -> bool:
    return any(path == m or m in path.parents for m in _MACHINERY)


def _call_sites() -> tuple[CallSite, ...]:
    """The innermost frame outside the op machinery, then (if that one is inside this
    package, e.g. in ``nn``) the innermost frame outside the package: the user's line."""
    sites: list[CallSite] = []
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        if not _is_machinery(path):
            sites.append(CallSite(frame.f_code.co_filename, frame.f_lineno,
                                  frame.f_code.co_name))
            if _PACKAGE not in path.parents:
                break
            if len(sites) == 1:
                frame = frame.f_back
                continue
        frame = frame.f_back
    return tuple(sites[:1] + sites[-1:]) if len(sites) > 1 else tuple(sites)


def _on_record(op: Op, params: dict[str, Any]) -> None:
    op._anomaly_sites = _call_sites()
    op._anomaly_params = params


def _describe_bad(array: np.ndarray) -> str:
    kinds = []
    if np.isnan(array).any():
        kinds.append("NaN")
    if np.isinf(array).any():
        kinds.append("Inf")
    return " and ".join(kinds)


def where_created(op: Op) -> str:
    """Where ``op`` was recorded (only known for ops recorded inside detect_anomaly)."""
    sites = getattr(op, "_anomaly_sites", None)
    if not sites:
        return "  (unknown: the op was recorded outside detect_anomaly())"
    return "\n".join("  " + str(site).replace("\n", "\n  ") for site in sites)


def _on_backward(op: Op, grad: np.ndarray, input_grads: Sequence[np.ndarray | None]) -> None:
    bad = [(i, g) for i, g in enumerate(input_grads)
           if g is not None and not np.isfinite(g).all()]
    if not bad and np.isfinite(grad).all():
        return
    shapes = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in op.inputs)
    scope = f" in module {op.scope!r}" if getattr(op, "scope", "") else ""
    if np.isfinite(grad).all():
        which = ", ".join(f"input {i} ({_describe_bad(g)})" for i, g in bad)
        head = (f"backward of {op.name!r}{scope} produced a non-finite gradient for "
                f"{which} from a finite incoming gradient")
    else:
        # Every op before this one passed the check, so the NaN/Inf came with the seed.
        head = (f"backward of {op.name!r}{scope} received a gradient holding "
                f"{_describe_bad(grad)}: the seed passed to backward() is not finite")
    raise AnomalyError(f"{head}\n  op inputs: {shapes}\n  created at:\n{where_created(op)}")


@contextlib.contextmanager
def detect_anomaly(enabled: bool = True) -> Iterator[None]:
    """Inside this block, ops remember where they were created and a backward pass that
    produces NaN or Inf raises :class:`AnomalyError` at the first op that did."""
    previous = engine.set_anomaly_hooks((_on_record, _on_backward) if enabled else None)
    try:
        yield
    finally:
        engine.set_anomaly_hooks(previous)
