"""Pictures of the recorded graph: gradients along every edge, attention weights, and a
step-by-step walk through the backward pass.

- :func:`draw_graph`: the computation graph as a Graphviz digraph, with per-edge
  gradient norms, residual splits and module clusters; ``.write(stem)`` gives .dot,
  .svg and .png, and Jupyter shows it inline.
- :func:`draw_attention` / :func:`attention_records`: each head's attention weights as
  heatmaps, beside the gradient of the loss with respect to them.
- :func:`backward_stepper`: SVG frames of the backward pass and an HTML page that steps
  through them with the arrow keys.
- :func:`layer_input_grad_norms`, :func:`draw_gradient_flow`, :func:`token_similarity`,
  :func:`draw_token_similarity`: how much gradient reaches each layer, and how much of
  the sequence's information survives it.
- :func:`replay`: the backward pass run again from a seed, keeping every edge's
  gradient; the pictures above read it (the graph must be kept with
  ``backward(retain_graph=True)`` to draw after backward).
- :func:`write_all`: all of it for one loss, in one folder.
"""

from __future__ import annotations

from tinygrad_attn.viz.attention import AttentionRecord, attention_records, draw_attention
from tinygrad_attn.viz.files import write_all
from tinygrad_attn.viz.flow import (
    draw_gradient_flow,
    draw_token_similarity,
    layer_input_grad_norms,
    token_similarity,
)
from tinygrad_attn.viz.graph import GradGraph, draw_graph
from tinygrad_attn.viz.render import RendererNotFoundError, find_renderer
from tinygrad_attn.viz.replay import Replay, replay
from tinygrad_attn.viz.stepper import backward_stepper

__all__ = [
    "AttentionRecord", "GradGraph", "Replay", "RendererNotFoundError", "attention_records",
    "backward_stepper", "draw_attention", "draw_gradient_flow", "draw_graph",
    "draw_token_similarity", "find_renderer", "layer_input_grad_norms", "replay",
    "token_similarity", "write_all",
]
