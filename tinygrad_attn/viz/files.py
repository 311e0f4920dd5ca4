"""``write_all``: every picture of one forward and backward pass, in one folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinygrad_attn.tensor import Tensor
from tinygrad_attn.viz.attention import attention_records, draw_attention
from tinygrad_attn.viz.flow import draw_gradient_flow, layer_input_grad_norms
from tinygrad_attn.viz.graph import draw_graph
from tinygrad_attn.viz.stepper import backward_stepper


def write_all(loss: Tensor, out_dir: str | os.PathLike[str], *, seed: Any = None,
              tokens: Sequence[str] | None = None, batch_index: int = 0,
              collapse_depth: int | None = 2, full_graph: bool = False,
              stepper: bool = False, layers_prefix: str = "layers",
              attention_queries: Sequence[int] | None = None,
              attention_mark: int | None = None,
              gradient_flow: bool = True) -> dict[str, Any]:
    """Write the graph, the attention views and the gradient-flow chart for ``loss``.

    The gradients are replayed once from ``seed`` (default: ones for a one-element loss)
    and every picture reads that one replay; after ``loss.backward()`` the graph must
    have been kept with ``retain_graph=True``. Files in ``out_dir``:

    - ``graph.{dot,svg,png}``: modules collapsed at ``collapse_depth``;
      ``graph_full.*`` too when ``full_graph``;
    - ``attention_<module path>.{svg,png}``: each attention op's heads for
      ``batch_index``, beside d loss / d weights, labelled with ``tokens`` (only the
      query rows ``attention_queries``, if given; key ``attention_mark`` framed);
    - ``gradient_flow.{svg,png}``: the gradient norm reaching each ``layers.i`` input
      (unless ``gradient_flow`` is False);
    - ``stepper/stepper.html`` and its frames when ``stepper``.

    Returns {name: path or list of paths}.
    """
    if not isinstance(loss, Tensor):
        raise TypeError(f"write_all: loss must be a Tensor, got {type(loss).__name__}")
    out = Path(out_dir)
    graph = draw_graph(loss, collapse_depth=collapse_depth, seed=seed)
    rep = graph.replay  # the one replay every picture below reads
    written: dict[str, Any] = {"graph": graph.write(out / "graph")}
    if full_graph:
        written["graph_full"] = draw_graph(loss, replay=rep).write(out / "graph_full")
    attention = []
    for record in attention_records(loss, replay_=rep):
        name = "attention_" + (record.scope.replace(".", "_") or "root")
        draw_attention(record, tokens, batch=batch_index, path=out / name,
                       queries=attention_queries, mark=attention_mark)
        attention.append(out / f"{name}.png")
    written["attention"] = attention
    if rep.seed is not None:
        norms = layer_input_grad_norms(loss, layers_prefix, replay_=rep)
        if gradient_flow and len(norms) > 1:
            draw_gradient_flow({"this model": norms}, out / "gradient_flow")
            written["gradient_flow"] = out / "gradient_flow.png"
        if stepper:
            written["stepper"] = backward_stepper(loss, out / "stepper", graph=graph)
    return written
