"""Label placement, measured on the rendered SVG: no edge runs through a label's text in the
README's pictures or the graph command's (the demo's: test_demo.py), the check itself
finds a crossing made on purpose, and an encoder's layers stack one below the other."""

from __future__ import annotations

import re

import numpy as np
import pytest
from svg_layout import SVG, crossings, parse, path_points, text_boxes, text_width

import tinygrad_attn as ta
from tinygrad_attn import Tensor, nn, ops, viz
from tinygrad_attn.demo.residuals import MODELS, residual_story

TOY = ('digraph { node [fontname=Helvetica, fontsize=11]; a -> b [label=" 0.0352 "]; '
       'c [shape=plaintext, label="a long label in the way"]; c -> d [style=invis] }')


def _readme_loss() -> Tensor:
    """The README's encoder and loss (seeded)."""
    ta.manual_seed(0)
    rng = np.random.default_rng(0)
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=256, dropout=0.0,
                                       batch_first=True)
    encoder = nn.TransformerEncoder(layer, num_layers=2)
    head = nn.Linear(64, 4)
    x = rng.standard_normal((8, 16, 64)).astype(np.float32)
    targets = x[..., :4].argmax(-1)
    return ops.cross_entropy(head(encoder(Tensor(x, requires_grad=True))).reshape(-1, 4),
                             targets.reshape(-1))


def _with_edge(svg: str, d: str) -> str:
    """``svg`` with one more edge drawn along path ``d`` (inside the picture's group)."""
    edge = f'<g id="planted" class="edge"><path fill="none" stroke="black" d="{d}"/></g>\n'
    end = svg.rindex("</g>")
    return svg[:end] + edge + svg[end:]


def _box(svg: str, text: str):
    return next(b for b in text_boxes(parse(svg)) if b.text == text)


def test_text_is_measured_as_the_renderer_measures_it():
    # Lines of an HTML label are centred in their node: twice the distance from the
    # node's centre to where a line starts is the width the renderer gave that line.
    dot = ('digraph { n [shape=box, fontname=Helvetica, fontsize=11, label=<<b>input '
           '(requires grad)</b><br/><font point-size="9">14 ops, 50k params</font>>] }')
    root = parse(viz.render.pipe(dot, "svg").decode())
    polygon = next(root.iter(f"{SVG}polygon"), None)
    xs = [float(p.split(",")[0]) for p in
          list(root.iter(f"{SVG}polygon"))[-1].get("points").split()]
    assert polygon is not None
    centre = (min(xs) + max(xs)) / 2
    lines = [t for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "start"]
    assert len(lines) == 2
    for line in lines:
        measured = text_width(line.text, float(line.get("font-size")),
                              line.get("font-weight") == "bold")
        assert measured == pytest.approx(2 * (centre - float(line.get("x"))), rel=0.03)


def test_the_check_finds_a_curve_through_a_label():
    svg = viz.render.pipe(TOY, "svg").decode()
    assert crossings(svg) == []
    box = _box(svg, "a long label in the way")
    # A cubic whose ends lie above the text and whose middle dips through it: the chord
    # between the ends misses the text, only the curve crosses it.
    top = box.y0 - 20
    dip = top + ((box.y0 + box.y1) / 2 - top) / 0.75
    curve = (f"M{box.x0 - 20:.2f},{top:.2f}C{box.x0:.2f},{dip:.2f} {box.x1:.2f},{dip:.2f} "
             f"{box.x1 + 20:.2f},{top:.2f}")
    assert crossings(_with_edge(svg, curve)) == ["planted crosses 'a long label in the way'"]
    assert path_points(curve)[:, 1].max() == pytest.approx((box.y0 + box.y1) / 2, abs=0.1)
    # the same curve lifted to pass 1.5 points above the text: no crossing
    lift = (box.y0 + box.y1) / 2 - box.y0 + 1.5
    above = (f"M{box.x0 - 20:.2f},{top - lift:.2f}C{box.x0:.2f},{dip - lift:.2f} "
             f"{box.x1:.2f},{dip - lift:.2f} {box.x1 + 20:.2f},{top - lift:.2f}")
    assert crossings(_with_edge(svg, above)) == []


def test_the_check_finds_an_edge_through_an_edge_label():
    svg = viz.render.pipe(TOY, "svg").decode()
    box = _box(svg, "0.0352")  # centred on its position, padding spaces excluded
    y = (box.y0 + box.y1) / 2
    x0, x1 = box.x0 - 30, box.x1 + 30
    line = f"M{x0:.2f},{y:.2f}C{x0 + 10:.2f},{y:.2f} {x1 - 10:.2f},{y:.2f} {x1:.2f},{y:.2f}"
    assert crossings(_with_edge(svg, line)) == ["planted crosses '0.0352'"]
    past = f"M{box.x1 + 1:.2f},{box.y0 - 9:.2f}C{box.x1 + 1:.2f},{y:.2f} " \
           f"{box.x1 + 1:.2f},{y:.2f} {box.x1 + 1:.2f},{box.y1 + 9:.2f}"
    assert crossings(_with_edge(svg, past)) == []  # one point right of the last digit


def test_the_check_refuses_paths_it_cannot_read():
    with pytest.raises(ValueError, match="only 'M x,y C"):
        path_points("M0,0L10,10")


@pytest.mark.parametrize("depth", [2, None])
def test_readme_graph_has_no_edge_through_text(depth):
    svg = viz.draw_graph(_readme_loss(), collapse_depth=depth).to_svg()
    assert crossings(svg) == []


def test_graph_command_pictures_have_no_edge_through_text(tmp_path):
    # python -m tinygrad_attn graph: six layers, modules collapsed at depth 2
    residual_story(tmp_path, layers=6, graphs=MODELS, collapse_depth=2)
    pictures = sorted(tmp_path.glob("graph_*.svg"))
    assert len(pictures) == 3
    for picture in pictures:
        assert crossings(picture.read_text()) == [], picture.name


def _cluster_boxes(svg: str) -> dict[str, tuple[float, float, float, float]]:
    boxes = {}
    for group in parse(svg).iter(f"{SVG}g"):
        if group.get("class") == "cluster":
            name = group.find(f"{SVG}title").text.removeprefix("cluster_")
            points = path_points(group.find(f"{SVG}path").get("d"))
            boxes[name] = (*points.min(axis=0), *points.max(axis=0))
    return boxes


def test_the_layers_of_the_full_graph_stack_one_below_the_other():
    svg = viz.draw_graph(_readme_loss()).to_svg()
    boxes = _cluster_boxes(svg)
    first, second = boxes["layers.0"], boxes["layers.1"]
    assert first[3] < second[1]  # layers.0 ends above where layers.1 begins
    width = float(re.search(r'<svg width="([\d.]+)pt"', svg).group(1))
    # about one layer wide (side by side, the layers made it over three times wider)
    assert width < 1.6 * (first[2] - first[0])
    # every cluster's name is at its top: no node of the cluster lies above its header
    root = parse(svg)
    headers = 0
    for group in root.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title")
        if group.get("class") == "node" and title.text.startswith("h_"):
            name = title.text[2:]
            header_top = min(b.y0 for b in text_boxes(group))
            assert header_top - boxes[name][1] < 40, name
            headers += 1
    assert headers == len(boxes) > 10
