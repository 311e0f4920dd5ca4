"""draw_graph: the DOT source of small known graphs, encoders, residuals and collapsing."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import nn, ops, viz
from tinygrad_attn.viz import style


def _edges(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines()
            if "->" in line and "style=invis" not in line]


def _has_cluster(source: str, path: str) -> bool:
    return re.search(rf'subgraph "?cluster_{re.escape(path)}"? {{', source) is not None


def _ops(source: str, name: str) -> int:
    return len(re.findall(rf"<b>{name}</b>", source))


def _encoder(layers: int, norm_first: bool = False) -> nn.TransformerEncoder:
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                       norm_first=norm_first)
    return nn.TransformerEncoder(layer, layers)


def _encoder_loss(layers: int, norm_first: bool = False) -> ta.Tensor:
    rng = np.random.default_rng(0)
    x = ta.Tensor(rng.standard_normal((2, 4, 8)), requires_grad=True)
    model = _encoder(layers, norm_first).double()
    out = model(x)
    loss = (out * ta.Tensor(rng.standard_normal(out.shape))).mean()
    loss.backward(retain_graph=True)
    return loss


def test_square_has_two_edges_each_with_its_own_gradient():
    x = ta.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x * x
    before = viz.draw_graph(y).source  # a root of 3 elements and no seed: no gradients
    assert len(_edges(before)) == 2
    assert "label=" not in "".join(_edges(before))
    assert "The graph that made mul" in before
    y.backward(np.ones(3), retain_graph=True)
    after = viz.draw_graph(y, seed=np.ones(3)).source
    edges = _edges(after)
    assert len(edges) == 2 and all(e.startswith("n0 -> n1") for e in edges)
    # each edge carries what mul sent along it, g * x, norm sqrt(14); the total is 2x
    assert all(f'label=" {np.sqrt(14):.3g} "' in e for e in edges)
    assert f"\u2016g\u2016 {2 * np.sqrt(14):.3g}" in after
    # node count: x, mul (and the legend)
    assert len(re.findall(r"^\s*(n\d+|m\d+) \[", after, re.M)) == 2


def test_replay_does_not_touch_grads_and_matches_backward():
    x = ta.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    w = ta.Tensor(np.array([2.0, 3.0]), requires_grad=True)
    loss = ((x * w).tanh() * x).sum()
    loss.backward(retain_graph=True)
    grads = x.grad.copy(), w.grad.copy()
    rep = viz.replay(loss)
    viz.draw_graph(loss)
    np.testing.assert_array_equal(x.grad, grads[0])
    np.testing.assert_array_equal(w.grad, grads[1])
    assert rep.tensor_norms[id(x)] == pytest.approx(np.linalg.norm(x.grad))
    assert rep.tensor_norms[id(w)] == pytest.approx(np.linalg.norm(w.grad))
    # the replay is the engine's pass again, to the bit
    np.testing.assert_array_equal(rep.grads[id(x)], x.grad)
    np.testing.assert_array_equal(rep.grads[id(w)], w.grad)


def test_replayed_encoder_gradients_equal_backward_to_the_bit():
    ta.manual_seed(0)
    rng = np.random.default_rng(0)
    model = _encoder(2)
    x = ta.Tensor(rng.standard_normal((2, 4, 8)).astype(np.float32), requires_grad=True)
    loss = ops.cross_entropy(model(x).reshape(-1, 8), rng.integers(0, 8, 8))
    rep = viz.replay(loss)  # before backward: the same numbers backward will give
    loss.backward(retain_graph=True)
    for p in [x, *model.parameters()]:
        np.testing.assert_array_equal(rep.grads[id(p)], p.grad)


def test_drawing_a_freed_graph_says_to_retain_it():
    x = ta.Tensor(np.ones(3), requires_grad=True)
    loss = (x * 2.0).tanh().sum()
    loss.backward()
    for draw in (viz.draw_graph, viz.attention_records, viz.replay,
                 viz.layer_input_grad_norms):
        with pytest.raises(RuntimeError, match=r"retain_graph=True") as err:
            draw(loss)
        assert str(err.value).startswith(draw.__name__)


def test_drawing_after_an_in_place_change_refuses():
    w = ta.Tensor(np.ones(3), requires_grad=True)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    w.data -= 0.1 * w.grad  # an optimizer step's in-place change
    w._bump_version()
    with pytest.raises(RuntimeError, match="draw_graph: .*in-place"):
        viz.draw_graph(loss)


def test_broadcast_edge_gradient_is_reduced_to_the_input_shape():
    a = ta.Tensor(np.ones((3, 4)), requires_grad=True)
    b = ta.Tensor(np.ones(4), requires_grad=True)
    loss = (a + b).sum()
    loss.backward(retain_graph=True)
    rep = viz.replay(loss)
    add = loss._ctx.inputs[0]
    assert rep.edge_norms[(id(add), 0)] == pytest.approx(np.sqrt(12))
    assert rep.edge_norms[(id(add), 1)] == pytest.approx(np.sqrt(4 * 9))


def test_inputs_output_and_parameter_names_are_marked():
    loss = _encoder_loss(2)
    source = viz.draw_graph(loss).source
    model_names = [name for name, _ in _encoder(2).named_parameters()]
    assert len(model_names) == 2 * 12
    for name in model_names:
        assert f"<b>{name}</b>" in source
    assert "input (requires grad)" in source
    assert "<b>output</b>" in source and "peripheries=2" in source
    assert "Legend" in source


def test_clusters_are_named_by_module_path_with_param_counts():
    loss = _encoder_loss(2)
    source = viz.draw_graph(loss).source
    for path in ["layers", "layers.0", "layers.1.self_attn", "layers.0.norm2",
                 "layers.1.linear1"]:
        assert _has_cluster(source, path), path
    params_per_layer = 3 * 8 * 8 + 3 * 8 + 8 * 8 + 8 + 8 * 16 + 16 + 16 * 8 + 8 + 4 * 8
    assert f"<b>layers.0</b><br/><font point-size=\"9\" color=\"#4a4a4a\">" \
           f"{params_per_layer} params" in source


def test_every_residual_add_says_where_the_gradient_went_in_words():
    loss = _encoder_loss(2)
    graph = viz.draw_graph(loss)
    source = graph.source
    assert _ops(source, "residual add") == 4
    # post-norm: x + self_attn(x), then h + linear2(relu(linear1(h))) with h = norm1(...)
    assert len(re.findall(r"to input: via skip \d", source)) == 2
    assert source.count(" \u00b7 via self_attn ") == 2
    assert len(re.findall(r"to norm1 output: via skip \d", source)) == 2
    assert source.count(" \u00b7 via linear1\u2192linear2 ") == 2
    assert "branch" not in "".join(_edges(source))  # "branch" means one thing only
    assert len(re.findall(r'label=" skip [0-9.e+-]+ "', source)) == 4
    assert len(re.findall(r'label=" skip [^"]*" [^\]]*style=dashed', source)) == 4


def test_residual_split_values():
    x = ta.Tensor(np.array([0.3, -0.7]), requires_grad=True)
    skip = x * 2.0
    out = ops.residual(skip, skip.tanh())
    out.backward(np.array([1.0, 1.0]), retain_graph=True)
    source = viz.draw_graph(out, seed=np.ones(2)).source
    g_branch = 1 - np.tanh(skip.data) ** 2  # back through tanh to the fork
    expected = (f"to mul output: via skip {style.fmt_norm(np.sqrt(2))} \u00b7 via branch "
                f"{style.fmt_norm(np.linalg.norm(g_branch))}")
    assert expected in source


def test_collapse_depth_draws_one_node_per_module():
    loss = _encoder_loss(2)
    source = viz.draw_graph(loss, collapse_depth=2).source
    assert source.count("shape=box3d") == 2
    assert "<b>layers.0</b>" in source and "<b>layers.1</b>" in source
    assert _ops(source, "layer_norm") == 0 and _ops(source, "linear") == 0
    assert _has_cluster(source, "layers")
    assert not _has_cluster(source, "layers.0")
    # the residual path survives collapsing: words in each box, skips drawn around them
    assert len(re.findall(r"to input: via skip \d", source)) == 2
    assert len(re.findall(r"to norm1 output: via skip \d", source)) == 2
    around = [e for e in _edges(source) if "skip" in e and "style=dashed" in e]
    assert [e.split(" ")[0:3:2] for e in around] == [["n0", "m2"], ["m1", "m3"]] or \
        len(around) == 2
    assert "residual skip path" in source
    deeper = viz.draw_graph(loss, collapse_depth=3).source
    assert "<b>layers.0.self_attn</b>" in deeper and _has_cluster(deeper, "layers.0")
    # per layer: self_attn, linear1, linear2, norm1, norm2 (dropout with p=0 records no op)
    assert deeper.count("shape=box3d") == 2 * 5
    assert _ops(deeper, "residual add") == 4
    # edges between layers carry the summed gradient sent back by the whole module
    edges = [e for e in _edges(source) if "label=" in e]
    assert edges


def test_collapsed_six_layer_encoder_is_small():
    loss = _encoder_loss(6)
    source = viz.draw_graph(loss, collapse_depth=2).source
    nodes = re.findall(r"^\s*(?:n|m)\d+ \[", source, re.M)
    assert source.count("shape=box3d") == 6
    assert len(nodes) < 15


def test_nan_and_inf_edges_are_red_and_zero_edges_grey():
    x = ta.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    y = x.sqrt().sum()
    with np.errstate(divide="ignore"):
        y.backward(retain_graph=True)
        source = viz.draw_graph(y).source
    x_edge = [e for e in _edges(source) if e.startswith("n0 ->")][0]
    assert f'color="{style.NONFINITE}"' in x_edge and "Inf" in x_edge
    z = ta.Tensor(np.array([-1.0, -2.0]), requires_grad=True)
    r = z.relu().sum()
    r.backward(retain_graph=True)
    edge = [e for e in _edges(viz.draw_graph(r).source) if e.startswith("n0 ->")][0]
    assert f'color="{style.ZERO}"' in edge and 'label=" 0 "' in edge


def test_pen_width_grows_with_the_gradient():
    a = ta.Tensor(np.ones(3), requires_grad=True)
    b = ta.Tensor(np.ones(3), requires_grad=True)
    loss = (a * 100.0 + b * 0.01).sum()
    loss.backward(retain_graph=True)
    source = viz.draw_graph(loss).source
    widths = {}
    for edge in _edges(source):
        label = re.search(r'label=" ([^ ]+) "', edge)
        width = re.search(r"penwidth=([0-9.]+)", edge)
        widths[label.group(1)] = float(width.group(1))
    assert widths[style.fmt_norm(100 * np.sqrt(3))] > widths[style.fmt_norm(0.01 * np.sqrt(3))]


def test_bad_arguments():
    x = ta.Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match="root must be a Tensor"):
        viz.draw_graph(np.ones(2))
    with pytest.raises(ValueError, match="collapse_depth"):
        viz.draw_graph(x * 2, collapse_depth=0)
    with pytest.raises(ValueError, match="replay: seed of shape"):
        viz.replay(x * 2, seed=np.ones(3))
    with pytest.raises(ValueError, match="draw_graph: seed of shape"):
        viz.draw_graph(x * 2, seed=np.ones(3))
