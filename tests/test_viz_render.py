"""Rendering pictures: SVG and PNG with the bundled renderer, attention views, the
backward stepper, the gradient-flow chart and the ``graph`` command."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import nn, ops, viz
from tinygrad_attn.__main__ import main
from tinygrad_attn.demo.residuals import residual_story
from tinygrad_attn.viz import render, style

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _small_loss() -> tuple[ta.Tensor, ta.Tensor]:
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True, name="x")
    w = ta.Tensor(np.array([0.5, -1.0]), requires_grad=True, name="w")
    loss = ((x * w).tanh() * x).sum()
    loss.backward(retain_graph=True)
    return loss, x


def _encoder_loss() -> ta.Tensor:
    ta.manual_seed(0)
    rng = np.random.default_rng(0)
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, 2)
    out = model(ta.Tensor(rng.standard_normal((2, 5, 8)).astype(np.float32)))
    loss = (out * ta.Tensor(rng.standard_normal(out.shape).astype(np.float32))).mean()
    loss.backward(retain_graph=True)
    return loss


def test_a_renderer_ships_with_the_package():
    assert render.find_renderer() is not None


def test_write_renders_dot_svg_and_png(tmp_path):
    loss, _ = _small_loss()
    paths = viz.draw_graph(loss).write(tmp_path / "small")
    assert sorted(paths) == ["dot", "png", "svg"]
    assert paths["dot"].read_text().startswith("digraph")
    root = ET.parse(paths["svg"]).getroot()
    assert root.tag.endswith("svg")
    assert "tanh" in paths["svg"].read_text()
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC


def test_jupyter_display_uses_the_bundled_renderer():
    loss, _ = _small_loss()
    bundle = viz.draw_graph(loss)._repr_mimebundle_()
    assert ET.fromstring(bundle["image/svg+xml"].split("?>", 1)[-1].lstrip()).tag.endswith(
        "svg")


def test_missing_renderer_names_what_to_install_and_keeps_the_dot(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ATTN_DOT", str(tmp_path / "no-such-program"))
    loss, _ = _small_loss()
    with pytest.raises(viz.RendererNotFoundError, match="pip install graphviz-pure"):
        viz.draw_graph(loss).write(tmp_path / "g")
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    with pytest.raises(ValueError, match="unknown format"):
        viz.draw_graph(loss).write(tmp_path / "g", formats=("pdf",))


def test_attention_records_and_their_gradient():
    rng = np.random.default_rng(1)
    q, k, v = (ta.Tensor(rng.standard_normal((1, 2, 3, 4)), requires_grad=True)
               for _ in range(3))
    cotangent = rng.standard_normal((1, 2, 3, 4))
    loss = (ops.scaled_dot_product_attention(q, k, v) * ta.Tensor(cotangent)).sum()
    loss.backward(retain_graph=True)
    (record,) = viz.attention_records(loss)
    weights = np.exp(q.data @ np.swapaxes(k.data, -1, -2) / 2.0)
    weights /= weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(record.weights, weights, rtol=1e-10)
    # out = W v, so dL/dW = dL/dout v^T
    np.testing.assert_allclose(record.grad, cotangent @ np.swapaxes(v.data, -1, -2),
                               rtol=1e-10)


def test_draw_attention_writes_a_grid_of_heads(tmp_path):
    records = viz.attention_records(_encoder_loss())
    assert [r.scope for r in records] == ["layers.0.self_attn", "layers.1.self_attn"]
    tokens = ["the", "cat", "sat", "on", "mats"]
    fig = viz.draw_attention(records[1], tokens, batch=1, path=tmp_path / "att")
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_title(loc="left")]
    assert [ax.get_title(loc="left") for ax in visible] == [
        "head 0 \u00b7 weights", "head 0 \u00b7 dL/d weights",
        "head 1 \u00b7 weights", "head 1 \u00b7 dL/d weights"]
    assert [t.get_text() for t in visible[0].get_yticklabels()] == tokens
    assert ET.parse(tmp_path / "att.svg").getroot().tag.endswith("svg")
    assert (tmp_path / "att.png").read_bytes()[:8] == PNG_MAGIC
    only_weights = viz.draw_attention(records[0].weights[0, 0])
    assert len([ax for ax in only_weights.axes if ax.get_title(loc="left")]) == 1
    with pytest.raises(ValueError, match="batch index 2"):
        viz.draw_attention(records[0], batch=2)
    with pytest.raises(ValueError, match="3 query tokens"):
        viz.draw_attention(records[0], ["a", "b", "c"])


def test_backward_stepper_frames_and_page(tmp_path):
    loss, _ = _small_loss()
    page = viz.backward_stepper(loss, tmp_path)
    frames = sorted(tmp_path.glob("frame_*.svg"))
    steps = len(viz.replay(loss).steps)
    assert steps == 4 and len(frames) == steps + 1
    for frame in frames:
        ET.parse(frame)
    last = frames[-1].read_text()
    assert "backward of mul" in last and "stroke: #d1495b" in last
    html = page.read_text()
    assert "ArrowRight" in html and "ArrowLeft" in html and html.count("<svg") == 1
    x = ta.Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match=r"backward_stepper: a root of shape \(2,\) needs"):
        viz.backward_stepper(x * x, tmp_path)


def test_layer_input_grad_norms_match_backward():
    ta.manual_seed(0)
    rng = np.random.default_rng(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, 3)
    x = ta.Tensor(rng.standard_normal((2, 4, 8)), requires_grad=True)
    loss = (model(x) * 0.5).sum()
    loss.backward(retain_graph=True)
    norms = viz.layer_input_grad_norms(loss)
    assert len(norms) == 3
    assert norms[0] == pytest.approx(np.linalg.norm(x.grad))
    assert all(np.isfinite(norms)) and all(n > 0 for n in norms)


def test_graph_command_writes_graphs_and_chart(tmp_path, capsys):
    assert main(["graph", "--layers", "2", "--norm", "pre", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "post-norm" in printed and "no residual" in printed
    for name in ["graph_pre_norm.svg", "graph_pre_norm.png", "gradient_flow.png"]:
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / "graph_post_norm.svg").exists()


def test_residual_story_models_share_weights_and_differ_in_gradient_flow(tmp_path):
    result = residual_story(tmp_path, layers=3, graphs=())
    norms = result["norms"]
    assert set(norms) == {"post-norm", "pre-norm", "no residual"}
    assert all(len(v) == 3 for v in norms.values())
    # pre-norm's identity path delivers at least the last layer's gradient to layer 0
    assert norms["pre-norm"][0] >= norms["pre-norm"][-1]
    assert norms["pre-norm"] != norms["post-norm"]


def test_write_all(tmp_path):
    written = viz.write_all(_encoder_loss(), tmp_path, tokens=list("abcde"), stepper=True)
    assert written["graph"]["png"].exists()
    assert [p.name for p in written["attention"]] == [
        "attention_layers_0_self_attn.png", "attention_layers_1_self_attn.png"]
    assert written["gradient_flow"].name == "gradient_flow.png"
    assert written["gradient_flow"].exists()
    assert written["stepper"].exists()


def test_collapsed_six_layer_graph_renders_within_budget(tmp_path):
    import time
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, 6)
    x = np.random.default_rng(0).standard_normal((2, 5, 16)).astype(np.float32)
    out = model(ta.Tensor(x, requires_grad=True))
    out.backward(np.full(out.shape, 0.5, dtype=np.float32), retain_graph=True)
    start = time.perf_counter()
    paths = viz.draw_graph(out, collapse_depth=2).write(tmp_path / "g6")
    assert time.perf_counter() - start < 5.0
    assert paths["png"].stat().st_size > 0


def test_stepper_shows_a_module_header_gradient_only_once_the_module_is_done(tmp_path):
    ta.manual_seed(0)
    rng = np.random.default_rng(0)
    first, second = nn.Linear(4, 4), nn.Linear(4, 2)
    model = nn.Sequential(first, nn.Tanh(), second)
    x = ta.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    loss = ops.cross_entropy(model(x), np.array([0, 1, 0]))
    graph = viz.draw_graph(loss)
    assert len(graph.cluster_members) == 3  # modules "0", "1" (tanh) and "2"
    viz.backward_stepper(loss, tmp_path, graph=graph)
    frames = sorted(tmp_path.glob("frame_*.svg"))
    hidden = {dom: [f"#{dom} text[fill=" in frame.read_text() for frame in frames]
              for dom in graph.cluster_members}
    for flags in hidden.values():
        # hidden from the first frame until some frame, shown from then on
        assert flags[0] and not flags[-1]
        assert not any(flags[flags.index(False):])
    # the module nearer the loss is done first
    shown = {graph.cluster_members[dom][0]: flags.index(False) for dom, flags in hidden.items()}
    assert list(dict(sorted(shown.items(), key=lambda kv: kv[1]))) == sorted(
        shown, key=lambda n: -int(n[1:]))
    # the headers of modules with parameters state the gradient in the colour hidden
    svg = ET.fromstring(frames[0].read_text()[frames[0].read_text().find("<svg"):])
    stated = [g.get("id") for g in svg.iter("{http://www.w3.org/2000/svg}g")
              if g.get("id") in hidden and any(
                  t.get("fill") == style.GRAD_TEXT and "\u2016g\u2016" in (t.text or "")
                  for t in g.iter("{http://www.w3.org/2000/svg}text"))]
    assert len(stated) == 2


def test_stepper_shows_a_residual_split_once_the_branch_has_come_back(tmp_path):
    x = ta.Tensor(np.array([0.3, -0.7]), requires_grad=True)
    fork = x * 2.0
    out = ops.residual(fork, fork.tanh()).sum()  # the branch: tanh, back to the fork
    graph = viz.draw_graph(out)
    add = out._ctx.inputs[0]
    add_id = graph.node_ids[id(add)]
    viz.backward_stepper(out, tmp_path, graph=graph)
    steps = [s.node._ctx.name for s in graph.replay.steps]
    assert steps == ["sum", "residual_add", "tanh", "mul"]
    hidden = [f"#{add_id} text[fill=" in f.read_text()
              for f in sorted(tmp_path.glob("frame_*.svg"))]
    # the add runs at frame 2, the branch (tanh) at 3; the words hold from frame 4, when
    # the fork (mul) has everything
    assert hidden == [True, True, True, True, False]
