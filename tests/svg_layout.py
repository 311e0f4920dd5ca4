"""Where things lie in a rendered Graphviz SVG, to check that no edge crosses label text.

Text: the box the glyphs of each ``<text>`` element ink, from its position, anchor and
font size and Helvetica's own glyph metrics (advance widths and glyph boxes, from the
Adobe metrics files matplotlib ships; Graphviz sized the nodes with the same widths, and
viewers draw Helvetica or a metric-compatible Arial/Liberation Sans). Edges: each edge's
path, its cubic Bezier segments sampled densely, checked segment by segment against every
text box.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import matplotlib
import numpy as np

SVG = "{http://www.w3.org/2000/svg}"
# Helvetica's cap height and descender, in ems: the ink of a glyph the font lacks.
ASCENT, DESCENT = 0.718, 0.207
# Characters our labels use that Helvetica's standard encoding lacks: the width the
# renderer gives them, in thousandths of an em (their whole cell counted as ink, so the
# check errs on the side of finding a crossing).
FALLBACK = {"\u2016": 833, "\u2192": 1000, "\u00d7": 584, "\u00b7": 278, "\u2014": 1000,
            "\u2265": 584, "\u2264": 584, "\u2026": 1000}


@cache
def _afm(bold: bool) -> dict[str, tuple[int, int, int, int, int]]:
    """Helvetica's (or Helvetica-Bold's) glyphs by character: (advance width, ink left,
    bottom, right, top), in thousandths of an em from the glyph's origin on the baseline."""
    name = "phvb8a.afm" if bold else "phvr8a.afm"
    path = Path(matplotlib.get_data_path()) / "fonts" / "afm" / name
    by_name = {"periodcentered": "\u00b7", "multiply": "\u00d7"}
    glyphs: dict[str, tuple[int, int, int, int, int]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        found = re.match(r"C (-?\d+) ; WX (\d+) ; N (\S+) ; B (-?\d+) (-?\d+) (-?\d+) (-?\d+)",
                         line)
        if not found:
            continue
        code, glyph = int(found[1]), found[3]
        metrics = tuple(int(v) for v in (found[2], *found.groups()[3:]))
        if glyph in by_name:
            glyphs[by_name[glyph]] = metrics
        elif 32 <= code < 127:
            glyphs[chr(code)] = metrics
    return glyphs


def _glyph(char: str, bold: bool) -> tuple[int, int, int, int, int]:
    found = _afm(bold).get(char)
    if found is not None:
        return found
    width = FALLBACK.get(char, 1000)  # a glyph the font lacks: its whole cell is ink
    return (width, 0, round(-DESCENT * 1000), width, round(ASCENT * 1000))


def text_width(text: str, size: float, bold: bool = False) -> float:
    """The advance width of ``text`` in Helvetica at ``size`` points."""
    return size * sum(_glyph(c, bold)[0] for c in text) / 1000


def ink(text: str, size: float, bold: bool = False) -> tuple[float, float, float, float]:
    """Where the glyphs of ``text`` put ink, relative to its start on the baseline:
    (left, top, right, bottom) in points, y growing downward as in SVG (spaces hold none)."""
    left = right = None
    top, bottom = 0.0, 0.0
    pen = 0.0
    for char in text:
        advance, x0, y0, x1, y1 = _glyph(char, bold)
        if not char.isspace():
            left = pen + x0 if left is None else min(left, pen + x0)
            right = pen + x1 if right is None else max(right, pen + x1)
            top, bottom = max(top, y1), min(bottom, y0)
        pen += advance
    if left is None:
        return (0.0, 0.0, 0.0, 0.0)
    return (size * left / 1000, -size * top / 1000, size * right / 1000,
            -size * bottom / 1000)


@dataclass(frozen=True)
class TextBox:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float


def text_boxes(root: ET.Element) -> list[TextBox]:
    """The box of the ink of every non-empty ``<text>`` element of the picture."""
    boxes = []
    for element in root.iter(f"{SVG}text"):
        text = element.text or ""
        if not text.strip():
            continue
        size = float(element.get("font-size", "14"))
        bold = element.get("font-weight") == "bold"
        width = text_width(text, size, bold)
        x, y = float(element.get("x")), float(element.get("y"))
        anchor = element.get("text-anchor", "start")
        start = x - {"middle": width / 2, "end": width}.get(anchor, 0.0)
        left, top, right, bottom = ink(text, size, bold)
        boxes.append(TextBox(text.strip(), start + left, y + top, start + right, y + bottom))
    return boxes


def _bezier(points: np.ndarray) -> np.ndarray:
    """Points along a path of cubic segments (p0, c1, c2, p1, c1, c2, p2, ...), at most
    about half a point apart."""
    samples = [points[:1]]
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[i:i + 4]
        hull = (np.linalg.norm(p1 - p0) + np.linalg.norm(p2 - p1)
                + np.linalg.norm(p3 - p2))
        t = np.linspace(0.0, 1.0, max(8, int(hull * 2) + 2))[1:, None]
        samples.append((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1
                       + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3)
    return np.concatenate(samples)


def path_points(d: str) -> np.ndarray:
    """Sampled points of an SVG path made of ``M`` and ``C`` commands (what Graphviz
    writes for edges)."""
    commands = re.findall(r"[A-Za-z]|-?\d*\.?\d+(?:e[-+]?\d+)?", d)
    if not commands or commands[0] != "M" or any(
            c.isalpha() and c not in "MC" for c in commands):
        raise ValueError(f"path_points: only 'M x,y C ...' paths are read, got {d[:60]!r}")
    numbers = [float(c) for c in commands if not c.isalpha()]
    return _bezier(np.array(numbers).reshape(-1, 2))


def edge_paths(root: ET.Element) -> list[tuple[str, np.ndarray]]:
    """(edge id, sampled points) of every visible edge stroke."""
    edges = []
    for group in root.iter(f"{SVG}g"):
        if group.get("class") != "edge":
            continue
        for path in group.iter(f"{SVG}path"):
            if path.get("stroke") in (None, "none", "transparent"):
                continue
            edges.append((group.get("id") or "", path_points(path.get("d"))))
    return edges


def _segments_hit(points: np.ndarray, box: TextBox) -> bool:
    """Whether the polyline through ``points`` enters ``box`` (Liang-Barsky clipping of
    each segment)."""
    p, q = points[:-1], points[1:]
    d = q - p
    t0, t1 = np.zeros(len(p)), np.ones(len(p))
    inside = np.ones(len(p), dtype=bool)
    for delta, start, low, high in ((d[:, 0], p[:, 0], box.x0, box.x1),
                                    (d[:, 1], p[:, 1], box.y0, box.y1)):
        for num, den in ((start - low, -delta), (high - start, delta)):
            parallel = den == 0
            inside &= ~(parallel & (num < 0))
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(parallel, 0.0, num / np.where(parallel, 1.0, den))
            entering = ~parallel & (den < 0)
            leaving = ~parallel & (den > 0)
            t0 = np.where(entering, np.maximum(t0, r), t0)
            t1 = np.where(leaving, np.minimum(t1, r), t1)
    return bool(np.any(inside & (t0 < t1)))


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg[svg.find("<svg"):])


def crossings(svg: str) -> list[str]:
    """"<edge id> crosses '<text>'" for every edge whose stroke runs through a label's
    text in the SVG picture ``svg``."""
    root = parse(svg)
    boxes = text_boxes(root)
    found = []
    for edge_id, points in edge_paths(root):
        lo, hi = points.min(axis=0), points.max(axis=0)
        for box in boxes:
            if box.x1 < lo[0] or box.x0 > hi[0] or box.y1 < lo[1] or box.y0 > hi[1]:
                continue
            if _segments_hit(points, box):
                found.append(f"{edge_id} crosses {box.text!r}")
    return found
