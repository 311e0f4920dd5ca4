"""Colours, widths and number formats shared by every picture."""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

# Node fills, one per kind of node (also listed in the legend).
FILL = {
    "op": "#e3ecf8",
    "parameter": "#dcefd6",
    "input": "#d5edf5",
    "output": "#fde2c4",
    "residual": "#fff1b8",
    "module": "#ebe3f6",
}
BORDER = "#5a6b80"
TEXT = "#4a4a4a"       # small print: shapes, counts
GRAD_TEXT = "#1f3b5c"  # every number that states a gradient (the stepper hides them)
NOISE = "#e08a00"      # a gradient below the dtype's resolution
NOISE_TEXT = "#a86400"
ZERO = "#a8a8a8"     # an edge whose gradient is exactly zero
NONFINITE = "#e00000"  # NaN or Inf
NO_GRAD = "#9a9a9a"  # an input that needs no gradient
HIGHLIGHT = "#d1495b"
MARK = "#7b2cbf"       # the word that decides: purple, in neither attention colormap
# Light to dark blue: small to large gradient norms on a log scale.
_RAMP = ((0x9e, 0xc9, 0xe2), (0x31, 0x82, 0xbd), (0x08, 0x30, 0x6b))


def ramp(t: float) -> str:
    """Colour at ``t`` in [0, 1] along the light-to-dark blue ramp."""
    t = min(max(t, 0.0), 1.0) * (len(_RAMP) - 1)
    i = min(int(t), len(_RAMP) - 2)
    frac = t - i
    rgb = (round(a + (b - a) * frac) for a, b in zip(_RAMP[i], _RAMP[i + 1]))
    return "#" + "".join(f"{c:02x}" for c in rgb)


class LogScale:
    """Maps gradient norms to pen width and colour by their logarithm."""

    def __init__(self, norms: list[float]) -> None:
        logs = [math.log10(n) for n in norms if n > 0 and math.isfinite(n)]
        self.low = min(logs) if logs else 0.0
        self.high = max(logs) if logs else 0.0

    def position(self, norm: float) -> float:
        if self.high == self.low:
            return 1.0
        return (math.log10(norm) - self.low) / (self.high - self.low)

    def pen(self, norm: float) -> tuple[str, float]:
        """(colour, pen width) for an edge whose gradient has this norm."""
        if not math.isfinite(norm):
            return NONFINITE, 3.5
        if norm == 0:
            return ZERO, 1.0
        t = self.position(norm)
        return ramp(t), 1.0 + 4.0 * t


def fmt_norm(value: float) -> str:
    """A number in 3 significant digits, one format everywhere: 0.352, 12.3, 0.0140
    between 0.01 and 1000, else 7.75e-04, 5.50e-08, 1.23e+03; 0, NaN, Inf."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")
    if value == 0:
        return "0"
    if 0.01 <= abs(value) < 1000:
        return f"{value:#.3g}".rstrip(".")
    return f"{value:.2e}"


fmt_value = fmt_norm


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "scalar" if not shape else "\u00d7".join(str(n) for n in shape)


def fmt_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2g}M"
    if n >= 10_000:
        return f"{n / 1e3:.3g}k"
    return str(n)


def escape(text: str) -> str:
    """Text for an HTML-like Graphviz label."""
    return html.escape(text, quote=True)


def plain_log_ticks(ax: Any) -> None:
    """Label a log-scale y axis with plain decimals (0.04, 0.2) where they are short, and
    powers of ten elsewhere; the ticks labelled stay matplotlib's choice."""
    from matplotlib.ticker import LogFormatterSciNotation

    class Plain(LogFormatterSciNotation):
        def __call__(self, x: float, pos: int | None = None) -> str:
            label = super().__call__(x, pos)
            return f"{x:g}" if label and 1e-3 <= x < 1e4 else label

    ax.yaxis.set_major_formatter(Plain())
    ax.yaxis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int) -> None:
    """Write a matplotlib figure as ``path.svg`` and ``path.png`` (a given .svg/.png
    suffix is dropped), making the folder if needed."""
    stem = Path(path)
    stem = stem.with_suffix("") if stem.suffix in (".svg", ".png") else stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".svg"))
    fig.savefig(stem.with_suffix(".png"), dpi=dpi)
