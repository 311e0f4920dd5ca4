"""Turning DOT source into SVG and PNG, with or without a system Graphviz.

The renderer is looked for in this order: ``$TINYGRAD_ATTN_DOT`` (a path to any program
with ``dot``'s flags), ``graphviz-pure`` (a self-contained Graphviz port that ``pip``
installs beside Python, so pictures work right after ``pip install``), then the system
``dot``. The ``.dot`` file is always written first, so a missing renderer never loses the
graph.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

FORMATS = ("dot", "svg", "png")
_PURE = "graphviz-pure"
INSTALL_HINT = ("install one with `pip install graphviz-pure` (a self-contained renderer), "
                "or install Graphviz so that `dot` is on PATH (`apt-get install graphviz`, "
                "`brew install graphviz`, `conda install graphviz`)")


class RendererNotFoundError(RuntimeError):
    """No program that turns DOT into pictures could be found."""


def _script_dirs() -> list[Path]:
    """Where pip puts console scripts for this interpreter (also when not on PATH)."""
    dirs = [Path(sys.executable).parent]
    for scheme in (None, f"{os.name}_user"):
        try:
            path = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path(
                "scripts")
        except KeyError:
            continue
        if path:
            dirs.append(Path(path))
    return dirs


def find_renderer() -> str | None:
    """The path of a program with ``dot``'s command line, or None."""
    override = os.environ.get("TINYGRAD_ATTN_DOT")
    if override:
        return shutil.which(override) or (override if Path(override).is_file() else None)
    found = shutil.which(_PURE)
    if found:
        return found
    for folder in _script_dirs():
        for name in (_PURE, _PURE + ".exe"):
            candidate = folder / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("dot")


def _require_renderer(dot_path: Path | None = None) -> str:
    program = find_renderer()
    if program is None:
        where = f"; the DOT source was written to {dot_path}" if dot_path else ""
        raise RendererNotFoundError(f"no Graphviz renderer found: {INSTALL_HINT}{where}")
    return program


def pipe(source: str, fmt: str = "svg", timeout: float = 120.0) -> bytes:
    """Render DOT source to bytes of format ``fmt`` ("svg" or "png")."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"pipe: format must be 'svg' or 'png', got {fmt!r}")
    program = _require_renderer()
    done = subprocess.run([program, f"-T{fmt}"], input=source.encode("utf-8"),
                          capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(program).name} failed to render {fmt} "
                           f"(exit {done.returncode}): {done.stderr.decode(errors='replace')}")
    return done.stdout


def write(source: str, stem: str | os.PathLike[str],
          formats: Iterable[str] = FORMATS) -> dict[str, Path]:
    """Write DOT ``source`` as ``stem.dot`` and render ``formats`` beside it.

    Returns {format: path}. Raises :class:`RendererNotFoundError` (after writing the
    ``.dot`` file) when SVG or PNG was asked for and no renderer exists.
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"write: unknown format(s) {unknown}; choose from {FORMATS}")
    stem = Path(stem)
    if stem.suffix in {".dot", ".svg", ".png", ".gv"}:
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    dot_path = stem.with_suffix(".dot")
    dot_path.write_text(source, encoding="utf-8")
    paths: dict[str, Path] = {"dot": dot_path}  # always kept: the source of the picture
    pictures = [f for f in formats if f != "dot"]
    if pictures:
        program = _require_renderer(dot_path)
        for fmt in pictures:
            out = stem.with_suffix(f".{fmt}")
            done = subprocess.run([program, f"-T{fmt}", str(dot_path), "-o", str(out)],
                                  capture_output=True, timeout=300, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{Path(program).name} failed to render {out} "
                                   f"(exit {done.returncode}): "
                                   f"{done.stderr.decode(errors='replace')}")
            paths[fmt] = out
    return paths
