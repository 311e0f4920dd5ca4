"""What the pictures teach: the noise floor, the legend, one number format, the caption,
attention strips. (Labels clear of edges: test_viz_layout.py.)"""

from __future__ import annotations

import re

import graphviz
import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import nn, ops, viz
from tinygrad_attn.viz import style

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _encoder(norm_first: bool = False, layers: int = 2) -> nn.TransformerEncoder:
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0,
                                       norm_first=norm_first, batch_first=True)
    return nn.TransformerEncoder(layer, layers)


def _toy_loss(norm_first: bool = False) -> ta.Tensor:
    """Cross-entropy of a per-position classifier: a loss that depends on the weights."""
    rng = np.random.default_rng(0)
    encoder, head = _encoder(norm_first), nn.Linear(16, 4)
    x = rng.standard_normal((2, 6, 16)).astype(np.float32)
    return ops.cross_entropy(head(encoder(ta.Tensor(x, requires_grad=True))).reshape(-1, 4),
                             x[..., :4].argmax(-1).reshape(-1))


def _legend(source: str) -> str:
    return source[source.index("<b>Legend</b>"):]


def test_a_loss_that_does_not_depend_on_the_weights_is_drawn_as_noise():
    # mean(LayerNorm(.)**2) is ~1 whatever comes in: what reaches the layers is rounding
    rng = np.random.default_rng(0)
    x = ta.Tensor(rng.standard_normal((2, 6, 16)).astype(np.float32), requires_grad=True)
    constant = (_encoder()(x) ** 2).mean()
    source = viz.draw_graph(constant, collapse_depth=2).source
    assert "below float32 resolution: the loss hardly depends on this" in _legend(source)
    noisy = [e for e in source.splitlines() if "->" in e and style.NOISE in e]
    assert noisy and all("style=dotted" in e or "style=dashed" in e for e in noisy)
    # a real loss: no noise anywhere, and no legend entry for it
    real = viz.draw_graph(_toy_loss(), collapse_depth=2).source
    assert style.NOISE not in real and "resolution" not in real


def test_the_noise_floor_scales_with_the_dtype():
    x = ta.Tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)
    tiny = (x * np.float32(1e-9)).sum() + 1.0  # the loss hardly depends on x
    assert "resolution" in viz.draw_graph(tiny).source
    x64 = ta.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    assert "resolution" not in viz.draw_graph((x64 * 1e-9).sum() + 1.0).source


def test_the_legend_lists_only_what_is_drawn():
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    source = viz.draw_graph((x * x).sum()).source
    legend = _legend(source)
    assert "op: name" in legend and "output:" in legend and "input" in legend
    for absent in ("parameter:", "residual", "module collapsed", "skip", "zero gradient",
                   "NaN", "needs no gradient", "resolution"):
        assert absent not in legend, absent
    collapsed = _legend(viz.draw_graph(_toy_loss(), collapse_depth=2).source)
    for present in ("parameter", "module collapsed", "residual skip path", "via skip"):
        assert present in collapsed, present
    assert "residual add: skip + branch" not in collapsed  # no residual node is drawn


@pytest.mark.parametrize("depth", [None, 2, 3])
def test_the_residual_path_is_visible_at_every_depth(depth):
    source = viz.draw_graph(_toy_loss(), collapse_depth=depth).source
    assert len(re.findall(r"to input: via skip \d[^ ]* \u00b7 via self_attn \d", source)) == 2
    dashed = [e for e in source.splitlines() if "->" in e and "style=dashed" in e
              and "skip" in e]
    assert len(dashed) >= 2


def test_one_number_format():
    source = viz.draw_graph(_toy_loss(), collapse_depth=2).source
    numbers = re.findall(r"(?:\u2016g\u2016|skip|via [a-z0-9_\u2192]+) (-?[0-9][^ <\"]*)",
                         source)
    assert numbers
    for number in numbers:
        assert re.fullmatch(r"\d\.\d\de[+-]\d\d|\d+\.?\d*", number), number
        digits = number.split("e")[0].replace(".", "").lstrip("0")
        assert len(digits) == 3 or number == "0", number


def test_attention_strips_mark_the_deciding_word_with_two_colormaps(tmp_path):
    rng = np.random.default_rng(1)
    q, k, v = (ta.Tensor(rng.standard_normal((1, 2, 12, 4)), requires_grad=True)
               for _ in range(3))
    loss = (ops.scaled_dot_product_attention(q, k, v) * ta.Tensor(
        rng.standard_normal((1, 2, 12, 4)))).sum()
    (record,) = viz.attention_records(loss)
    tokens = [f"w{i}" for i in range(12)]
    fig = viz.draw_attention(record, tokens, queries=[-1], mark=5, path=tmp_path / "strip")
    axes = [ax for ax in fig.axes if ax.get_title(loc="left")]
    cmaps = {ax.get_title(loc="left").split(" \u00b7 ")[1]: ax.images[0].get_cmap().name
             for ax in axes}
    assert cmaps == {"weights": "Blues", "dL/d weights": "RdBu_r"}
    grads = [ax for ax in axes if "dL" in ax.get_title(loc="left")]
    for ax in grads:  # the diverging colormap is centred on zero
        low, high = ax.images[0].get_clim()
        assert low == -high
    for ax in axes:  # the deciding word is marked, labels readable at 100%
        labels = ax.get_xticklabels()
        assert labels[5].get_fontweight() == "bold"
        # at least 10 px at the 110 dpi the PNG is written with
        assert all(label.get_fontsize() * 110 / 72 >= 10 for label in labels)
    assert (tmp_path / "strip.png").read_bytes()[:8] == PNG_MAGIC
    # the frame's colour is in neither colormap, so it cannot be read as a value
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    frames = [p for ax in axes for p in ax.patches]
    assert len(frames) == len(axes)
    mark = np.array(to_rgb(style.MARK))
    assert all(np.allclose(p.get_edgecolor()[:3], mark) for p in frames)
    for name in ("Blues", "RdBu_r"):
        ramp = colormaps[name](np.linspace(0, 1, 256))[:, :3]
        assert np.min(np.linalg.norm(ramp - mark, axis=1)) > 0.25, name
    # each colorbar is as tall as its strip
    for ax in axes:
        bar = next(other for other in fig.axes if other is not ax and
                   abs(other.get_position().y0 - ax.get_position().y0) < 0.02
                   and other.get_position().x0 > ax.get_position().x1)
        assert bar.get_position().height == pytest.approx(ax.get_position().height,
                                                          rel=0.15)


def test_digraph_is_a_graphviz_digraph():
    assert isinstance(viz.draw_graph(_toy_loss()), graphviz.Digraph)


def test_the_caption_names_a_seed_only_when_one_was_given():
    loss = _toy_loss()
    assert "from a seed" not in viz.draw_graph(loss, collapse_depth=2).source
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    seeded = viz.draw_graph(x * 3.0, seed=np.array([3.0, 4.0])).source
    assert "from a seed of norm 5.00" in seeded
