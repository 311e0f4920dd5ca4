"""Write the PyTorch reference fixtures that the parity and optimizer tests load.

The project never imports torch; only this script does. To regenerate the committed
fixtures in ``tests/fixtures/``::

    pip install torch==2.13.0        # CPU build is enough
    python scripts/make_fixtures.py

Everything runs in float64 with fixed seeds, so the files are reproducible.

Layout of every ``.npz`` (keys are ``case/kind/name``; no pickled objects anywhere):

- ``case/config``: a JSON string: the module and its constructor arguments, the
  positional ``args`` (names of inputs) and the extra keyword arguments of the call.
- ``case/input/NAME``: inputs (float64 inputs are differentiated; integer ones not).
- ``case/mask/KWARG``: masks passed by keyword (boolean: True = may not attend).
- ``weights/SET/NAME``: a module's ``state_dict()``, in PyTorch's order; cases built
  alike share one set, named by ``weights`` in their config.
- ``case/out/I`` and ``case/cotangent/I``: the I-th tensor output and the random
  cotangent it is multiplied by; the gradients are those of sum_I <out_I, cotangent_I>.
- ``case/grad_input/NAME`` and ``case/grad/NAME``: gradients wrt inputs and parameters.

``optim.npz`` holds optimizer trajectories instead (see :func:`optim_cases`),
``functional.npz`` calls of ``torch.nn.functional`` (see :func:`record_function`) and
``port_*.npz`` what the PyTorch programs in ``tests/ports/`` report (see
:func:`port_results`).
"""

from __future__ import annotations

import io
import json
import os
import sys
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
B, T, S, D, H, FF = 2, 5, 7, 8, 2, 16  # batch, length, source length, d_model, heads, ff

Arrays = dict[str, np.ndarray]


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Perturb every parameter (LayerNorm ones/zeros and zero biases included) so that
    every gradient path is exercised with generic values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def record(arrays: Arrays, case: str, module: torch.nn.Module, config: dict[str, Any],
           inputs: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
           seed: int) -> None:
    """Run ``module(*inputs[args], **masks, **config['call'])``, backpropagate a fixed
    random cotangent and store everything under ``case/``."""
    gen = torch.Generator().manual_seed(seed + 1000)
    leaves = {name: t.detach().clone().requires_grad_(t.is_floating_point())
              for name, t in inputs.items()}
    module.zero_grad(set_to_none=True)
    result = module(*(leaves[n] for n in config["args"]), **masks, **config["call"])
    outputs = [o for o in (result if isinstance(result, tuple) else (result,))
               if o is not None]
    cotangents = [torch.randn(o.shape, generator=gen, dtype=torch.float64) for o in outputs]
    objective = sum((o * c).sum() for o, c in zip(outputs, cotangents))
    objective.backward()
    arrays[f"{case}/config"] = np.array(json.dumps(config))
    for name, t in leaves.items():
        arrays[f"{case}/input/{name}"] = t.detach().numpy().copy()
        if t.grad is not None:
            arrays[f"{case}/grad_input/{name}"] = t.grad.numpy().copy()
    for name, m in masks.items():
        arrays[f"{case}/mask/{name}"] = m.numpy().copy()
    for name, value in module.state_dict().items():
        key = f"weights/{config['weights']}/{name}"
        if key in arrays:  # a shared set: every case must have built the same weights
            assert np.array_equal(arrays[key], value.numpy()), f"{case}: {key} differs"
        arrays[key] = value.numpy().copy()
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{case}: no gradient for {name}"
        arrays[f"{case}/grad/{name}"] = p.grad.numpy().copy()
    for i, (o, c) in enumerate(zip(outputs, cotangents)):
        out = o.detach().numpy()
        assert np.all(np.isfinite(out)), f"{case}: non-finite output"
        arrays[f"{case}/out/{i}"] = out.copy()
        arrays[f"{case}/cotangent/{i}"] = c.numpy().copy()


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def _causal(length: int) -> torch.Tensor:
    return torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)


def _padding(length: int) -> torch.Tensor:
    """Batch item 0 pads its last two positions, item 1 its last one (no full rows)."""
    mask = torch.zeros(B, length, dtype=torch.bool)
    mask[0, -2:] = True
    mask[1, -1] = True
    return mask


def _float_mask(seed: int, rows: int, cols: int, *lead: int) -> torch.Tensor:
    """Additive mask: random scores with a few -inf entries (never a whole row)."""
    mask = _randn(seed, *lead, rows, cols)
    mask[..., 0, 1] = -float("inf")
    mask[..., rows - 1, 0] = -float("inf")
    return mask


def layer_cases() -> Arrays:
    """Linear, LayerNorm and Embedding."""
    arrays: Arrays = {}
    specs: list[tuple[str, Callable[[], torch.nn.Module], dict[str, Any],
                      dict[str, torch.Tensor]]] = [
        ("linear", lambda: torch.nn.Linear(4, 3),
         {"module": "Linear", "init": {"in_features": 4, "out_features": 3}},
         {"x": _randn(1, B, T, 4)}),
        ("linear_no_bias", lambda: torch.nn.Linear(4, 3, bias=False),
         {"module": "Linear", "init": {"in_features": 4, "out_features": 3, "bias": False}},
         {"x": _randn(2, 3, 4)}),
        ("layernorm", lambda: torch.nn.LayerNorm(D),
         {"module": "LayerNorm", "init": {"normalized_shape": D}},
         {"x": _randn(3, B, T, D) * 3 + 1}),
        ("layernorm_2d_eps", lambda: torch.nn.LayerNorm((T, D), eps=1e-3),
         {"module": "LayerNorm", "init": {"normalized_shape": [T, D], "eps": 1e-3}},
         {"x": _randn(4, B, T, D)}),
        ("embedding", lambda: torch.nn.Embedding(10, 4),
         {"module": "Embedding", "init": {"num_embeddings": 10, "embedding_dim": 4}},
         {"indices": torch.tensor([[1, 3, 3, 9, 0], [3, 0, 7, 7, 7]])}),
    ]
    for i, (case, make, config, inputs) in enumerate(specs):
        torch.manual_seed(i)
        module = make().double()
        _randomise(module, seed=100 + i)
        config = {**config, "weights": case, "args": list(inputs), "call": {}}
        record(arrays, case, module, config, inputs, {}, seed=i)
    return arrays


def mha_cases() -> Arrays:
    """nn.MultiheadAttention: weights, masks, cross-attention, in both layouts and
    unbatched."""
    arrays: Arrays = {}
    x = _randn(10, B, T, D)
    self_args = ["x", "x", "x"]
    cross = {"query": _randn(11, B, T, D), "key": _randn(12, B, S, D),
             "value": _randn(13, B, S, D)}
    full_pad = torch.zeros(B, T, dtype=torch.bool)
    full_pad[1] = True  # every key of batch item 1 is padding
    float_padding = torch.where(_padding(T), -2.5, 0.0).to(torch.float64)
    float_padding[0, 0] = 0.75
    # case: (init extras, call kwargs, masks, cross-attention?)
    specs: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, torch.Tensor], bool]] = [
        ("weights_avg", {}, {"need_weights": True}, {}, False),
        ("weights_per_head", {}, {"need_weights": True, "average_attn_weights": False},
         {}, False),
        ("no_weights", {}, {"need_weights": False}, {}, False),
        ("key_padding", {}, {"need_weights": True}, {"key_padding_mask": _padding(T)},
         False),
        ("key_padding_no_weights", {}, {"need_weights": False},
         {"key_padding_mask": _padding(T)}, False),
        ("key_padding_float", {}, {"need_weights": False},
         {"key_padding_mask": float_padding}, False),
        ("attn_mask_bool", {}, {"need_weights": True}, {"attn_mask": _causal(T)}, False),
        ("attn_mask_bool_no_weights", {}, {"need_weights": False},
         {"attn_mask": _causal(T)}, False),
        ("attn_mask_float", {}, {"need_weights": True, "average_attn_weights": False},
         {"attn_mask": _float_mask(20, T, T)}, False),
        ("attn_mask_float_no_weights", {}, {"need_weights": False},
         {"attn_mask": _float_mask(21, T, T)}, False),
        ("attn_mask_3d_float", {}, {"need_weights": True},
         {"attn_mask": _float_mask(22, T, T, B * H)}, False),
        ("attn_mask_bool_and_padding", {}, {"need_weights": False},
         {"attn_mask": _causal(T), "key_padding_mask": _padding(T)}, False),
        ("causal_hint", {}, {"need_weights": False, "is_causal": True},
         {"attn_mask": _causal(T)}, False),
        ("cross", {}, {"need_weights": True, "average_attn_weights": False}, {}, True),
        ("cross_padding_no_weights", {}, {"need_weights": False},
         {"key_padding_mask": _padding(S)}, True),
        ("cross_float_mask", {}, {"need_weights": True},
         {"attn_mask": _float_mask(23, T, S)}, True),
        ("no_bias", {"bias": False}, {"need_weights": True}, {}, False),
        # PyTorch's SDPA path uses a "safe softmax": a query whose keys are all masked
        # gets zero weights (output = out_proj.bias), not NaN. Ours does the same.
        ("fully_padded_item_no_weights", {}, {"need_weights": False},
         {"key_padding_mask": full_pad}, False),
    ]
    seq_first = [(f"seq_first_{case}", {**init, "batch_first": False}, call, masks, cross)
                 for case, init, call, masks, cross in specs
                 if case in ("weights_per_head", "no_weights", "key_padding",
                             "attn_mask_bool_and_padding", "attn_mask_3d_float",
                             "cross_padding_no_weights", "cross_float_mask")]
    # A boolean padding mask with a float attn_mask: PyTorch makes one float mask.
    seq_first.append(("seq_first_float_mask_and_bool_padding", {"batch_first": False},
                      {"need_weights": False},
                      {"attn_mask": _float_mask(24, T, T), "key_padding_mask": _padding(T)},
                      False))
    for i, (case, init, call, masks, is_cross) in enumerate(specs + seq_first):
        init = {"embed_dim": D, "num_heads": H, "batch_first": True, **init}
        weights = "no_bias" if "bias" in init else "default"  # one set per architecture
        torch.manual_seed(200)
        module = torch.nn.MultiheadAttention(**init).double()
        _randomise(module, seed=300)
        inputs = cross if is_cross else {"x": x}
        if not init["batch_first"]:
            inputs = {k: v.transpose(0, 1).contiguous() for k, v in inputs.items()}
        args = ["query", "key", "value"] if is_cross else self_args
        config = {"module": "MultiheadAttention", "init": init, "weights": weights,
                  "args": args, "call": call}
        record(arrays, f"mha_{case}", module, config, inputs, masks, seed=400 + i)
    # Unbatched: one (L, E) sequence; the padding mask is (S,), a 3-D mask (H, L, S).
    unbatched = [
        ("self_weights_per_head", {"x": x[0]}, self_args,
         {"need_weights": True, "average_attn_weights": False},
         {"key_padding_mask": _padding(T)[0]}),
        ("self_no_weights_causal", {"x": x[1]}, self_args, {"need_weights": False},
         {"attn_mask": _causal(T)}),
        ("cross_3d_float_mask", {k: v[1] for k, v in cross.items()},
         ["query", "key", "value"], {"need_weights": True},
         {"attn_mask": _float_mask(25, T, S, H)}),
    ]
    for i, (case, inputs, args, call, masks) in enumerate(unbatched):
        init = {"embed_dim": D, "num_heads": H}
        torch.manual_seed(200)
        module = torch.nn.MultiheadAttention(**init).double()
        _randomise(module, seed=300)
        config = {"module": "MultiheadAttention", "init": init, "weights": "default",
                  "args": args, "call": call}
        record(arrays, f"mha_unbatched_{case}", module, config, inputs, masks, seed=480 + i)
    return arrays


def encoder_layer_cases() -> Arrays:
    """nn.TransformerEncoderLayer(batch_first=True, dropout=0.0), post- and pre-norm,
    relu and gelu, every mask kind."""
    arrays: Arrays = {}
    src = _randn(30, B, T, D)
    float_mask = _float_mask(31, T, T)
    masks: dict[str, dict[str, torch.Tensor]] = {
        "no_mask": {},
        "key_padding": {"src_key_padding_mask": _padding(T)},
        "causal_bool": {"src_mask": _causal(T)},
        "float_mask": {"src_mask": float_mask},
        "causal_and_padding": {"src_mask": _causal(T), "src_key_padding_mask": _padding(T)},
        "float_mask_and_padding": {"src_mask": float_mask,
                                   "src_key_padding_mask": _padding(T)},
    }
    i = 0
    for norm_first in (False, True):
        for activation in ("relu", "gelu"):
            variants = [(name, m, {}) for name, m in masks.items()
                        if activation == "relu" or "and_padding" not in name]
            variants.append(("is_causal", {"src_mask": _causal(T)}, {"is_causal": True}))
            for mask_name, mask, call in variants:
                i += 1
                init = {"d_model": D, "nhead": H, "dim_feedforward": FF, "dropout": 0.0,
                        "activation": activation, "norm_first": norm_first,
                        "batch_first": True}
                # Every variant has the same parameters: one shared weight set.
                torch.manual_seed(500)
                module = torch.nn.TransformerEncoderLayer(**init).double()
                module.train()  # the standard (not the fast) path
                _randomise(module, seed=600)
                norm = "pre" if norm_first else "post"
                config = {"module": "TransformerEncoderLayer", "init": init,
                          "weights": "default", "args": ["src"], "call": call}
                record(arrays, f"layer_{norm}_{activation}_{mask_name}", module, config,
                       {"src": src}, mask, seed=700 + i)
    # Other options: layer_norm_eps, bias=False, the safe softmax on a padded item.
    full_pad = torch.zeros(B, T, dtype=torch.bool)
    full_pad[1] = True
    # PyTorch's default layout, (S, B, E), and one unbatched (S, E) sequence.
    seq_first = src.transpose(0, 1).contiguous()
    extras = [("eps_no_bias", {"layer_norm_eps": 1e-3, "bias": False}, {}, src),
              ("fully_padded_item", {}, {"src_key_padding_mask": full_pad}, src),
              ("seq_first_padding", {"batch_first": False},
               {"src_key_padding_mask": _padding(T)}, seq_first),
              ("seq_first_pre_causal", {"batch_first": False, "norm_first": True},
               {"src_mask": _causal(T)}, seq_first),
              ("unbatched_float_mask", {"batch_first": False}, {"src_mask": float_mask},
               src[0])]
    for name, extra, mask, x in extras:
        i += 1
        init = {"d_model": D, "nhead": H, "dim_feedforward": FF, "dropout": 0.0,
                "batch_first": True, **extra}
        torch.manual_seed(500 + i)
        module = torch.nn.TransformerEncoderLayer(**init).double()
        _randomise(module, seed=600 + i)
        config = {"module": "TransformerEncoderLayer", "init": init, "weights": name,
                  "args": ["src"], "call": {}}
        record(arrays, f"layer_{name}", module, config, {"src": x}, mask, seed=700 + i)
    return arrays


def encoder_cases() -> Arrays:
    """nn.TransformerEncoder: two layers (each perturbed differently) and a final norm."""
    arrays: Arrays = {}
    src = _randn(40, B, T, D)
    specs = [
        ("post_padding_norm", False, "relu", True,
         {"src_key_padding_mask": _padding(T)}, {}),
        ("pre_causal_norm", True, "gelu", True, {"mask": _causal(T)}, {"is_causal": True}),
        ("post_float_mask_no_norm", False, "gelu", False,
         {"mask": _float_mask(41, T, T)}, {}),
        ("seq_first_pre_padding_norm", True, "relu", True,
         {"src_key_padding_mask": _padding(T)}, {}),
    ]
    for i, (name, norm_first, activation, final_norm, mask, call) in enumerate(specs):
        batch_first = not name.startswith("seq_first")
        layer_init = {"d_model": D, "nhead": H, "dim_feedforward": FF, "dropout": 0.0,
                      "activation": activation, "norm_first": norm_first,
                      "batch_first": batch_first}
        torch.manual_seed(800 + i)
        layer = torch.nn.TransformerEncoderLayer(**layer_init)
        module = torch.nn.TransformerEncoder(
            layer, num_layers=2, norm=torch.nn.LayerNorm(D) if final_norm else None,
            enable_nested_tensor=False).double()
        module.train()
        _randomise(module, seed=900 + i)
        config = {"module": "TransformerEncoder",
                  "init": {"layer": layer_init, "num_layers": 2, "norm": final_norm},
                  "weights": name, "args": ["src"], "call": call}
        x = src if batch_first else src.transpose(0, 1).contiguous()
        record(arrays, f"encoder_{name}", module, config, {"src": x}, mask, seed=950 + i)
    return arrays


def record_function(arrays: Arrays, case: str, fn: str, inputs: dict[str, torch.Tensor],
                    args: list[str], kwargs: dict[str, Any], seed: int,
                    keyword_inputs: tuple[str, ...] = ()) -> None:
    """Call ``torch.nn.functional.<fn>(*inputs[args], **inputs[keyword_inputs],
    **kwargs)``, backpropagate a random cotangent into every float64 input that is
    differentiable, and store it all under ``case/`` (config, input, out, cotangent,
    grad_input), as :func:`record` does for modules."""
    gen = torch.Generator().manual_seed(seed + 2000)
    constants = {"target", "weight"} if fn.endswith(("_loss", "cross_entropy")) else set()
    differentiable = [n for n in args if n not in constants and inputs[n].is_floating_point()]
    leaves = {n: t.detach().clone().requires_grad_(n in differentiable)
              for n, t in inputs.items()}
    out = getattr(torch.nn.functional, fn)(*(leaves[n] for n in args),
                                           **{n: leaves[n] for n in keyword_inputs}, **kwargs)
    config = {"fn": fn, "args": args, "keyword_inputs": list(keyword_inputs),
              "kwargs": kwargs}
    arrays[f"{case}/config"] = np.array(json.dumps(config))
    for name, t in leaves.items():
        arrays[f"{case}/input/{name}"] = t.detach().numpy().copy()
    arrays[f"{case}/out/0"] = out.detach().numpy().copy()
    if out.is_floating_point():
        cotangent = torch.randn(out.shape, generator=gen, dtype=torch.float64)
        (out * cotangent).sum().backward()
        arrays[f"{case}/cotangent/0"] = cotangent.numpy().copy()
        for name in differentiable:
            arrays[f"{case}/grad_input/{name}"] = leaves[name].grad.numpy().copy()


def functional_cases() -> Arrays:
    """torch.nn.functional: losses with weights, ignore_index, reduction and label
    smoothing; scaled_dot_product_attention with PyTorch's boolean mask (True = may
    attend); activations, embedding, layer_norm, softmaxes, one_hot."""
    arrays: Arrays = {}
    weights = torch.tensor([0.5, 2.0, 1.25], dtype=torch.float64)
    probs = torch.softmax(_randn(60, 4, 3), dim=-1)
    may_attend = torch.tensor([[True, False, True, True, False],
                               [True, True, False, False, False],
                               [False, False, False, True, True]])
    no_key = may_attend.clone()
    no_key[1] = False  # query 1 may attend to nothing: zero output, as PyTorch's
    float_mask = _float_mask(61, 3, 5)
    qkv = {"query": _randn(62, B, H, 3, 4), "key": _randn(63, B, H, 5, 4),
           "value": _randn(64, B, H, 5, 6)}
    sdpa_args = ["query", "key", "value"]
    specs: list[tuple[str, str, dict[str, torch.Tensor], list[str], dict[str, Any],
                      tuple[str, ...]]] = [
        ("ce_basic", "cross_entropy",
         {"input": _randn(65, 4, 5), "target": torch.tensor([0, 4, 2, 2])},
         ["input", "target"], {}, ()),
        ("ce_weight_ignore_smoothing", "cross_entropy",
         {"input": _randn(66, 6, 3), "target": torch.tensor([1, -100, 2, 0, 2, 1]),
          "weight": weights}, ["input", "target", "weight"], {"label_smoothing": 0.2}, ()),
        ("ce_nd_sum_ignore", "cross_entropy",
         {"input": _randn(67, 2, 3, 4), "target": torch.tensor([[0, 1, 2, 2], [1, 1, 0, 2]])},
         ["input", "target"], {"reduction": "sum", "ignore_index": 1}, ()),
        ("ce_none_weight_smoothing", "cross_entropy",
         {"input": _randn(68, 5, 3), "target": torch.tensor([0, 2, 1, 1, 0]),
          "weight": weights}, ["input", "target"],
         {"reduction": "none", "label_smoothing": 0.1}, ("weight",)),
        ("ce_probabilities", "cross_entropy",
         {"input": _randn(69, 4, 3), "target": probs, "weight": weights},
         ["input", "target", "weight"], {"label_smoothing": 0.25}, ()),
        ("ce_one_sample", "cross_entropy",
         {"input": _randn(70, 5), "target": torch.tensor(3)}, ["input", "target"], {}, ()),
        ("nll_weight_ignore", "nll_loss",
         {"input": _randn(71, 4, 3), "target": torch.tensor([0, 2, 1, 2]), "weight": weights},
         ["input", "target", "weight"], {"ignore_index": 2}, ()),
        ("nll_nd_none", "nll_loss",
         {"input": _randn(72, 2, 3, 4), "target": torch.tensor([[0, 1, 2, 2], [1, 1, 0, 2]])},
         ["input", "target"], {"reduction": "none"}, ()),
        ("mse_mean", "mse_loss", {"input": _randn(73, 3, 4), "target": _randn(74, 3, 4)},
         ["input", "target"], {}, ()),
        ("mse_sum", "mse_loss", {"input": _randn(75, 2, 3), "target": _randn(76, 2, 3)},
         ["input", "target"], {"reduction": "sum"}, ()),
        ("mse_none", "mse_loss", {"input": _randn(77, 5), "target": _randn(78, 5)},
         ["input", "target"], {"reduction": "none"}, ()),
        ("sdpa_bool_mask", "scaled_dot_product_attention", {**qkv, "attn_mask": may_attend},
         [*sdpa_args, "attn_mask"], {}, ()),
        ("sdpa_query_with_no_key", "scaled_dot_product_attention", {**qkv, "attn_mask": no_key},
         sdpa_args, {}, ("attn_mask",)),
        ("sdpa_float_mask_scale", "scaled_dot_product_attention",
         {**qkv, "attn_mask": float_mask}, sdpa_args, {"scale": 0.3}, ("attn_mask",)),
        ("sdpa_causal_rectangular", "scaled_dot_product_attention", dict(qkv), sdpa_args,
         {"dropout_p": 0.0, "is_causal": True}, ()),
        ("silu", "silu", {"input": _randn(79, 3, 4)}, ["input"], {}, ()),
        ("gelu_tanh", "gelu", {"input": _randn(80, 3, 4)}, ["input"],
         {"approximate": "tanh"}, ()),
        ("relu", "relu", {"input": _randn(81, 7)}, ["input"], {}, ()),
        ("embedding_padding", "embedding",
         {"input": torch.tensor([[0, 2, 2], [4, 1, 2]]), "weight": _randn(82, 5, 3)},
         ["input", "weight"], {"padding_idx": 2}, ()),
        ("layer_norm_affine", "layer_norm",
         {"input": _randn(83, 2, 3, 4), "weight": _randn(84, 3, 4), "bias": _randn(85, 3, 4)},
         ["input"], {"normalized_shape": [3, 4], "eps": 1e-3}, ("weight", "bias")),
        ("softmax_dim1", "softmax", {"input": _randn(86, 2, 3, 4)}, ["input"], {"dim": 1}, ()),
        ("log_softmax_dim0", "log_softmax", {"input": _randn(87, 3, 4)}, ["input"],
         {"dim": 0}, ()),
        ("linear", "linear", {"input": _randn(88, 2, 3), "weight": _randn(89, 4, 3),
                              "bias": _randn(90, 4)}, ["input", "weight", "bias"], {}, ()),
        ("one_hot", "one_hot", {"tensor": torch.tensor([[0, 3], [1, 1]])}, ["tensor"],
         {"num_classes": 5}, ()),
    ]
    for i, (case, fn, inputs, args, kwargs, keyword_inputs) in enumerate(specs):
        record_function(arrays, case, fn, inputs, args, kwargs, seed=i,
                        keyword_inputs=keyword_inputs)
    return arrays


# Named schedule functions for LambdaLR: the fixture config names them, the tests define
# the same formulas (a function cannot go into a fixture).
LR_LAMBDAS: dict[str, Callable[[int], float]] = {
    "warmup": lambda epoch: min(1.0, (epoch + 1) / 4),
    "decay": lambda epoch: 0.8**epoch,
}


def _scheduler(opt: torch.optim.Optimizer, spec: dict[str, Any]) -> Any:
    kwargs = dict(spec["kwargs"])
    if spec["class"] == "LambdaLR":
        names = kwargs["lr_lambda"]
        kwargs["lr_lambda"] = ([LR_LAMBDAS[n] for n in names] if isinstance(names, list)
                               else LR_LAMBDAS[names])
    return getattr(torch.optim.lr_scheduler, spec["class"])(opt, **kwargs)


def optim_cases() -> Arrays:
    """Parameter trajectories of torch.optim on a linear least-squares problem, and the
    learning rates of torch.optim.lr_scheduler.

    Keys: ``problem/X``, ``problem/Y``, ``problem/W0``, ``problem/b0`` (shared);
    ``case/config`` (JSON: class, positional ``args``, ``kwargs``, ``groups`` (None: one
    group [W, b]; else a list of dicts whose ``params`` name "W"/"b"), ``scheduler``
    (None or {class, kwargs}, stepped after every optimizer step), steps, ``skip_bias_at``:
    the step before which the bias gradient is set to None), ``case/W`` and ``case/b``
    (steps + 1, ...): the parameters before the first and after every step;
    ``case/grad_W`` and ``case/grad_b`` (steps, ...): the gradients each step used (NaN
    where skipped); ``case/lr`` (steps + 1, groups): each group's lr before every step;
    ``case/mid_groups`` (JSON: PyTorch's ``state_dict()["param_groups"]`` after ``mid``
    steps) and ``case/mid_state/INDEX/KEY``: its ``state`` then (``step`` as float64).
    The loss is mean((X @ W.T + b - Y) ** 2).

    ``sched/NAME/config`` (JSON: class, kwargs, group base lrs, steps) and
    ``sched/NAME/lr`` (steps + 1, groups): ``get_last_lr()`` after construction and
    after every ``step()``; ``sched/NAME/state`` (JSON): its ``state_dict()`` at the end.
    """
    arrays: Arrays = {}
    X, Y = _randn(50, 6, 4), _randn(51, 6, 3)
    W0, b0 = _randn(52, 3, 4), _randn(53, 3)
    arrays.update({"problem/X": X.numpy(), "problem/Y": Y.numpy(),
                   "problem/W0": W0.numpy(), "problem/b0": b0.numpy()})
    steps, mid = 6, 3
    cosine = {"class": "CosineAnnealingLR", "kwargs": {"T_max": 4, "eta_min": 0.005}}
    # name, class, positional args, kwargs, groups, scheduler, skip_bias_at
    specs: list[tuple[str, str, list[Any], dict[str, Any], list[dict[str, Any]] | None,
                      dict[str, Any] | None, int | None]] = [
        ("sgd", "SGD", [], {"lr": 0.1}, None, None, None),
        ("sgd_momentum", "SGD", [], {"lr": 0.1, "momentum": 0.9}, None, None, None),
        ("sgd_dampening", "SGD", [], {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}, None,
         None, None),
        # PyTorch's positional order: (lr, momentum, dampening, weight_decay, nesterov)
        ("sgd_positional", "SGD", [0.1, 0.9, 0.5, 0.05], {}, None, None, None),
        ("sgd_weight_decay", "SGD", [], {"lr": 0.1, "weight_decay": 0.05}, None, None, None),
        ("sgd_momentum_weight_decay", "SGD", [], {"lr": 0.05, "momentum": 0.8,
                                                  "weight_decay": 0.1}, None, None, None),
        ("sgd_nesterov", "SGD", [], {"lr": 0.05, "momentum": 0.9, "nesterov": True,
                                     "weight_decay": 0.01}, None, None, 3),
        ("sgd_groups", "SGD", [], {"lr": 0.1, "momentum": 0.9},
         [{"params": ["W"]}, {"params": ["b"], "lr": 0.01, "momentum": 0.5}], None, None),
        ("sgd_step_lr", "SGD", [0.1, 0.9], {},
         [{"params": ["W"]}, {"params": ["b"], "lr": 0.3}],
         {"class": "StepLR", "kwargs": {"step_size": 2, "gamma": 0.5}}, None),
        ("adam", "Adam", [], {"lr": 0.05}, None, None, None),
        ("adam_positional", "Adam", [0.05, [0.8, 0.95], 1e-3, 0.1, True], {}, None, None,
         None),
        ("adam_betas_eps", "Adam", [], {"lr": 0.05, "betas": [0.8, 0.95], "eps": 1e-3}, None,
         None, None),
        ("adam_weight_decay", "Adam", [], {"lr": 0.05, "weight_decay": 0.1}, None, None, 2),
        ("adam_amsgrad", "Adam", [], {"lr": 0.05, "amsgrad": True}, None, None, None),
        ("adam_groups", "Adam", [], {"lr": 0.05},
         [{"params": ["W"], "weight_decay": 0.1}, {"params": ["b"], "lr": 0.2,
                                                   "betas": [0.5, 0.9]}], None, None),
        ("adam_cosine", "Adam", [], {"lr": 0.05}, None, cosine, None),
        ("adamw", "AdamW", [], {"lr": 0.05, "weight_decay": 0.1}, None, None, 2),
        ("adamw_default_decay", "AdamW", [], {"lr": 0.05}, None, None, None),
        ("adamw_amsgrad", "AdamW", [], {"lr": 0.05, "weight_decay": 0.2, "amsgrad": True},
         None, None, 4),
        ("adamw_linear_lr", "AdamW", [], {"lr": 0.05},
         [{"params": ["W"]}, {"params": ["b"], "lr": 0.1}],
         {"class": "LinearLR", "kwargs": {"start_factor": 0.25, "total_iters": 3}}, None),
    ]
    for name, cls, args, kwargs, groups, sched, skip in specs:
        W = W0.clone().requires_grad_(True)
        b = b0.clone().requires_grad_(True)
        tensors = {"W": W, "b": b}

        def _tuples(d: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if k == "betas" else v for k, v in d.items()}

        params: Any = [W, b] if groups is None else [
            {**_tuples(g), "params": [tensors[n] for n in g["params"]]} for g in groups]
        torch_args = [tuple(a) if isinstance(a, list) else a for a in args]
        opt = getattr(torch.optim, cls)(params, *torch_args, foreach=False, **_tuples(kwargs))
        scheduler = _scheduler(opt, sched) if sched else None
        Ws, bs, gWs, gbs = [W.detach().clone()], [b.detach().clone()], [], []
        lrs = [[g["lr"] for g in opt.param_groups]]
        for step in range(steps):
            if step == mid:
                saved = opt.state_dict()
                arrays[f"{name}/mid_groups"] = np.array(json.dumps(saved["param_groups"]))
                for index, buffers in saved["state"].items():
                    for key, value in buffers.items():
                        # "step" is a float32 count in PyTorch; fixtures hold float64.
                        arrays[f"{name}/mid_state/{index}/{key}"] = value.numpy().astype(
                            np.float64)
            opt.zero_grad(set_to_none=True)
            loss = ((X @ W.T + b - Y) ** 2).mean()
            loss.backward()
            if skip == step:
                b.grad = None
            gWs.append(W.grad.clone())
            gbs.append(b.grad.clone() if b.grad is not None else torch.full_like(b, np.nan))
            opt.step()
            if scheduler is not None:
                scheduler.step()
            Ws.append(W.detach().clone())
            bs.append(b.detach().clone())
            lrs.append([g["lr"] for g in opt.param_groups])
        config = {"class": cls, "args": args, "kwargs": kwargs, "groups": groups,
                  "scheduler": sched, "steps": steps, "mid": mid, "skip_bias_at": skip}
        arrays[f"{name}/config"] = np.array(json.dumps(config))
        arrays[f"{name}/W"] = torch.stack(Ws).numpy()
        arrays[f"{name}/b"] = torch.stack(bs).numpy()
        arrays[f"{name}/grad_W"] = torch.stack(gWs).numpy()
        arrays[f"{name}/grad_b"] = torch.stack(gbs).numpy()
        arrays[f"{name}/lr"] = np.array(lrs, dtype=np.float64)

    # Schedulers alone: two groups with different base rates, more steps than T_max.
    sched_specs: list[tuple[str, dict[str, Any]]] = [
        ("step_lr", {"class": "StepLR", "kwargs": {"step_size": 3}}),
        ("step_lr_gamma", {"class": "StepLR", "kwargs": {"step_size": 2, "gamma": 0.7}}),
        ("lambda_lr", {"class": "LambdaLR", "kwargs": {"lr_lambda": "warmup"}}),
        ("lambda_lr_per_group", {"class": "LambdaLR",
                                 "kwargs": {"lr_lambda": ["warmup", "decay"]}}),
        ("linear_lr", {"class": "LinearLR", "kwargs": {}}),
        ("linear_lr_down", {"class": "LinearLR",
                            "kwargs": {"start_factor": 1.0, "end_factor": 0.1,
                                       "total_iters": 4}}),
        ("cosine", {"class": "CosineAnnealingLR", "kwargs": {"T_max": 5}}),
        ("cosine_eta_min", {"class": "CosineAnnealingLR",
                            "kwargs": {"T_max": 3, "eta_min": 0.01}}),
    ]
    sched_steps, base_lrs = 12, [0.1, 0.03]
    for name, spec in sched_specs:
        p, q = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([{"params": [p], "lr": base_lrs[0]},
                               {"params": [q], "lr": base_lrs[1]}])
        scheduler = _scheduler(opt, spec)
        lrs = [scheduler.get_last_lr()]
        for _ in range(sched_steps):
            opt.step()
            scheduler.step()
            lrs.append(scheduler.get_last_lr())
        config = {**spec, "base_lrs": base_lrs, "steps": sched_steps}
        arrays[f"sched/{name}/config"] = np.array(json.dumps(config))
        arrays[f"sched/{name}/lr"] = np.array(lrs, dtype=np.float64)
        arrays[f"sched/{name}/state"] = np.array(json.dumps(scheduler.state_dict()))
    return arrays


def checkpoint_cases() -> Arrays:
    """A float32 nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True) as
    PyTorch users save it: ``torch_file`` holds the bytes of
    ``safetensors.torch.save(layer.state_dict())`` (uint8); ``input`` and ``output`` are a
    (B, T, 8) input and the layer's output (train mode, float32 work, stored as float64)."""
    from safetensors.torch import save as save_safetensors

    torch.manual_seed(1000)
    layer = torch.nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=True)
    _randomise(layer, seed=1001)
    layer.train()  # the standard (not the fast) path
    x = _randn(1002, B, T, D).float()
    with torch.no_grad():
        out = layer(x)
    blob = save_safetensors(layer.state_dict())
    return {"torch_file": np.frombuffer(blob, dtype=np.uint8).copy(),
            "input": x.double().numpy(), "output": out.double().numpy()}


PORTS = ("gpt", "annotated", "first_lesson")


def port_results(name: str) -> Arrays:
    """Run the PyTorch code in ``tests/ports/<name>.py`` as it is (PyTorch imports) and
    flatten what it reports: ``initial/KEY`` (the state dict it started from, which the
    tests load), ``final/KEY``, and its losses and outputs. float32, as the port runs."""
    import importlib.util

    path = os.path.join(ROOT, "tests", "ports", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"port_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    arrays: Arrays = {}
    for key, value in module.run().items():
        if isinstance(value, dict):
            arrays.update({f"{key}/{k}": np.asarray(v) for k, v in value.items()})
        else:
            arrays[key] = np.asarray(value)
    return arrays


def tensor_api_cases() -> Arrays:
    """Each expression of tests/tensor_api_cases.py, evaluated by PyTorch: its value (as
    float64 or int64), its dtype's name and the gradient of sum(value * w) for x."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from tensor_api_cases import CASES, inputs, weight

    arrays: Arrays = {}
    for i, expression in enumerate(CASES):
        env = inputs(torch)
        value = eval(expression, env)  # noqa: S307 (the expressions are ours)
        array = value.detach().numpy()
        arrays[f"{i}/value"] = array.astype(np.float64 if array.dtype.kind == "f" else
                                            np.int64 if array.dtype.kind in "iu" else bool)
        arrays[f"{i}/dtype"] = np.array(str(value.dtype).replace("torch.", ""))
        if value.requires_grad:
            w = torch.tensor(weight(tuple(value.shape)), dtype=value.dtype)
            (value * w).sum().backward()
            arrays[f"{i}/grad"] = env["x"].grad.numpy().astype(np.float64)
    return arrays


def write_npz(path: str, arrays: Arrays) -> None:
    """``np.savez_compressed``, but byte-for-byte reproducible: fixed member timestamps,
    so regenerating unchanged fixtures leaves the committed files unchanged."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def main() -> None:
    os.makedirs(FIXTURES, exist_ok=True)
    files = {"layers.npz": layer_cases, "mha.npz": mha_cases,
             "encoder_layer.npz": encoder_layer_cases, "encoder.npz": encoder_cases,
             "functional.npz": functional_cases, "optim.npz": optim_cases,
             "checkpoint.npz": checkpoint_cases, "tensor_api.npz": tensor_api_cases}
    for name in PORTS:
        files[f"port_{name}.npz"] = lambda name=name: port_results(name)
    wanted = sys.argv[1:] or list(files)  # e.g. `make_fixtures.py optim.npz`
    unknown = sorted(set(wanted) - set(files))
    if unknown:
        sys.exit(f"make_fixtures.py: unknown fixture files {unknown}; choose from "
                 f"{sorted(files)}")
    for filename in wanted:
        arrays = files[filename]()
        for key, value in arrays.items():
            assert value.dtype.kind in "biufU", f"{key}: {value.dtype}"
            if not filename.startswith("port_"):  # the ports run in float32
                assert value.dtype.kind != "f" or value.dtype == np.float64, key
        path = os.path.join(FIXTURES, filename)
        write_npz(path, arrays)
        print(f"{path}: {len(arrays)} arrays, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    # float_mask_and_padding mixes a float src_mask with a boolean padding mask on purpose.
    warnings.filterwarnings("ignore", message="Support for mismatched")
    main()
