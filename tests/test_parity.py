"""PyTorch parity of whole layers: outputs and gradients against committed fixtures.

The fixtures in ``tests/fixtures/`` were written by ``scripts/make_fixtures.py`` with
PyTorch 2.13 in float64 (see its docstring for the layout). Torch is not needed here.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest

import tinygrad_attn.nn.functional as F
from tinygrad_attn import Tensor, nn

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
RTOL, ATOL = 1e-10, 1e-12

LAYER_CASES = ["linear", "linear_no_bias", "layernorm", "layernorm_2d_eps", "embedding"]
MHA_CASES = [f"mha_{c}" for c in (
    "weights_avg", "weights_per_head", "no_weights", "key_padding", "key_padding_no_weights",
    "key_padding_float", "attn_mask_bool", "attn_mask_bool_no_weights", "attn_mask_float",
    "attn_mask_float_no_weights", "attn_mask_3d_float", "attn_mask_bool_and_padding",
    "causal_hint", "cross", "cross_padding_no_weights", "cross_float_mask", "no_bias",
    "fully_padded_item_no_weights", "seq_first_weights_per_head", "seq_first_no_weights",
    "seq_first_key_padding", "seq_first_attn_mask_3d_float",
    "seq_first_attn_mask_bool_and_padding", "seq_first_cross_padding_no_weights",
    "seq_first_cross_float_mask", "seq_first_float_mask_and_bool_padding",
    "unbatched_self_weights_per_head", "unbatched_self_no_weights_causal",
    "unbatched_cross_3d_float_mask")]
_MASKS = ["no_mask", "key_padding", "causal_bool", "float_mask", "is_causal"]
ENCODER_LAYER_CASES = (
    [f"layer_{n}_{a}_{m}" for n in ("post", "pre") for a in ("relu", "gelu") for m in _MASKS]
    + [f"layer_{n}_relu_{m}" for n in ("post", "pre")
       for m in ("causal_and_padding", "float_mask_and_padding")]
    + ["layer_eps_no_bias", "layer_fully_padded_item", "layer_seq_first_padding",
       "layer_seq_first_pre_causal", "layer_unbatched_float_mask"])
ENCODER_CASES = ["encoder_post_padding_norm", "encoder_pre_causal_norm",
                 "encoder_post_float_mask_no_norm", "encoder_seq_first_pre_padding_norm"]
FILES = {"layers.npz": LAYER_CASES, "mha.npz": MHA_CASES,
         "encoder_layer.npz": ENCODER_LAYER_CASES, "encoder.npz": ENCODER_CASES}
ALL_CASES = [(f, c) for f, cases in FILES.items() for c in cases]

_cache: dict[str, dict[str, np.ndarray]] = {}


def _archive(filename: str) -> dict[str, np.ndarray]:
    if filename not in _cache:
        with np.load(os.path.join(FIXTURES, filename), allow_pickle=False) as archive:
            _cache[filename] = {k: archive[k] for k in archive.files}
    return _cache[filename]


class Case:
    """One recorded call: config, inputs, masks, weights, outputs and gradients."""

    def __init__(self, filename: str, case: str) -> None:
        arrays = _archive(filename)
        assert f"{case}/config" in arrays, f"{filename} lacks case {case}"
        self.name = case
        self.config: dict[str, Any] = json.loads(str(arrays[f"{case}/config"]))

        def group(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

        self.inputs = group(f"{case}/input/")
        self.masks = group(f"{case}/mask/")
        self.weights = group(f"weights/{self.config['weights']}/")
        self.grad_inputs = group(f"{case}/grad_input/")
        self.grads = group(f"{case}/grad/")
        n_out = len(group(f"{case}/out/"))
        self.outputs = [arrays[f"{case}/out/{i}"] for i in range(n_out)]
        self.cotangents = [arrays[f"{case}/cotangent/{i}"] for i in range(n_out)]


def build(config: dict[str, Any]) -> nn.Module:
    kind, init = config["module"], dict(config["init"])
    if kind == "TransformerEncoder":
        layer_init = init["layer"]
        norm = nn.LayerNorm(layer_init["d_model"]) if init["norm"] else None
        return nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer_init),
                                     init["num_layers"], norm=norm)
    if isinstance(init.get("normalized_shape"), list):
        init["normalized_shape"] = tuple(init["normalized_shape"])
    return getattr(nn, kind)(**init)


def run(case: Case, masks: dict[str, Any] | None = None,
        call: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, Tensor],
                                                    list[Tensor]]:
    """Build the module in float64, load the fixture weights, call it as PyTorch was
    called and backpropagate the fixture cotangents."""
    module = build(case.config).double()
    module.load_state_dict(case.weights)
    leaves = {name: Tensor(a, requires_grad=True) if a.dtype.kind == "f" else a
              for name, a in case.inputs.items()}
    masks = case.masks if masks is None else masks
    call = case.config["call"] if call is None else call
    result = module(*(leaves[n] for n in case.config["args"]), **masks, **call)
    outputs = [o for o in (result if isinstance(result, tuple) else (result,))
               if o is not None]
    if len(outputs) == len(case.cotangents):
        objective = sum((o * Tensor(c)).sum() for o, c in zip(outputs, case.cotangents))
        objective.backward()
    return module, leaves, outputs


def check(case: Case, module: nn.Module, leaves: dict[str, Any],
          outputs: list[Tensor]) -> None:
    assert len(outputs) == len(case.outputs), f"{case.name}: number of outputs"
    for i, (ours, ref) in enumerate(zip(outputs, case.outputs)):
        assert ours.dtype == np.float64
        np.testing.assert_allclose(ours.data, ref, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{case.name}: output {i}")
    assert set(case.grad_inputs) == {n for n, t in leaves.items() if isinstance(t, Tensor)}
    for name, ref in case.grad_inputs.items():
        np.testing.assert_allclose(leaves[name].grad, ref, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{case.name}: gradient wrt input {name}")
    params = dict(module.named_parameters())
    assert sorted(params) == sorted(case.grads)
    for name, ref in case.grads.items():
        assert params[name].grad is not None, f"{case.name}: no gradient for {name}"
        np.testing.assert_allclose(params[name].grad, ref, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{case.name}: gradient wrt {name}")


@pytest.mark.parametrize("filename,case", ALL_CASES, ids=[c for _, c in ALL_CASES])
def test_parity(filename: str, case: str) -> None:
    check(Case(filename, case), *run(Case(filename, case)))


@pytest.mark.parametrize("filename,case", ALL_CASES, ids=[c for _, c in ALL_CASES])
def test_parameter_names_order_and_shapes_match_torch(filename: str, case: str) -> None:
    c = Case(filename, case)
    module = build(c.config)
    ours = [(name, p.shape) for name, p in module.named_parameters()]
    assert ours == [(name, w.shape) for name, w in c.weights.items()]


def test_fixture_files_hold_only_the_listed_cases() -> None:
    for filename, cases in FILES.items():
        recorded = {k.split("/")[0] for k in _archive(filename)} - {"weights"}
        assert recorded == set(cases), filename


def test_fixtures_are_small_and_float64() -> None:
    total = sum(os.path.getsize(os.path.join(FIXTURES, f)) for f in os.listdir(FIXTURES)
                if f.endswith(".npz"))
    assert total < 1_500_000
    for filename in FILES:
        floats = [a for a in _archive(filename).values() if a.dtype.kind == "f"]
        assert floats and all(a.dtype == np.float64 for a in floats)


CAUSAL = [(f, c) for f, c in ALL_CASES if Case(f, c).config["call"].get("is_causal")]


@pytest.mark.parametrize("filename,case", CAUSAL, ids=[c for _, c in CAUSAL])
def test_is_causal_without_a_mask_builds_the_causal_mask(filename: str, case: str) -> None:
    """PyTorch needs the mask next to its ``is_causal`` hint; ours builds it when absent."""
    c = Case(filename, case)
    assert c.masks, "the recorded call passed the causal mask"
    check(c, *run(c, masks={}))


MASKED = [(f, c) for f, c in ALL_CASES if f == "mha.npz" and Case(f, c).masks]


@pytest.mark.parametrize("filename,case", MASKED, ids=[c for _, c in MASKED])
def test_masks_may_be_tensors(filename: str, case: str) -> None:
    c = Case(filename, case)
    check(c, *run(c, masks={k: Tensor(v) for k, v in c.masks.items()}))


def test_fully_padded_item_gets_zero_attention_like_torch() -> None:
    """PyTorch >= 2.5 (safe softmax in the SDPA path): a batch item whose keys are all
    padding attends to nothing, so its attention output is out_proj.bias exactly."""
    c = Case("mha.npz", "mha_fully_padded_item_no_weights")
    _, leaves, outputs = run(c)
    bias = c.weights["out_proj.bias"]
    np.testing.assert_array_equal(outputs[0].data[1], np.broadcast_to(bias, (5, 8)))
    assert np.all(np.isfinite(leaves["x"].grad))
    assert np.any(leaves["x"].grad[0] != 0)


def test_unbatched_attention_matches_the_first_batch_item() -> None:
    c = Case("mha.npz", "mha_key_padding")
    module = build(c.config).double()
    module.load_state_dict(c.weights)
    x = Tensor(c.inputs["x"][0])
    out, weights = module(x, x, x, key_padding_mask=c.masks["key_padding_mask"][0])
    assert out.shape == (5, 8) and weights.shape == (5, 5)
    np.testing.assert_allclose(out.data, c.outputs[0][0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(weights.data, c.outputs[1][0], rtol=RTOL, atol=ATOL)


# ---- nn.functional ----
FUNCTIONAL_CASES = [
    "ce_basic", "ce_weight_ignore_smoothing", "ce_nd_sum_ignore", "ce_none_weight_smoothing",
    "ce_probabilities", "ce_one_sample", "nll_weight_ignore", "nll_nd_none", "mse_mean",
    "mse_sum", "mse_none", "sdpa_bool_mask", "sdpa_query_with_no_key",
    "sdpa_float_mask_scale", "sdpa_causal_rectangular", "silu", "gelu_tanh", "relu",
    "embedding_padding", "layer_norm_affine", "softmax_dim1", "log_softmax_dim0", "linear",
    "one_hot"]


@pytest.mark.parametrize("case", FUNCTIONAL_CASES)
def test_functional_parity(case: str) -> None:
    """``F.<fn>`` called exactly as ``torch.nn.functional.<fn>`` was: same outputs and
    gradients (float64)."""
    arrays = _archive("functional.npz")
    config = json.loads(str(arrays[f"{case}/config"]))
    raw = {k.split("/")[-1]: v for k, v in arrays.items() if k.startswith(f"{case}/input/")}
    grads = {k.split("/")[-1]: v for k, v in arrays.items()
             if k.startswith(f"{case}/grad_input/")}
    inputs = {n: Tensor(a, requires_grad=n in grads) for n, a in raw.items()}
    kwargs = dict(config["kwargs"])
    if "normalized_shape" in kwargs:
        kwargs["normalized_shape"] = tuple(kwargs["normalized_shape"])
    out = getattr(F, config["fn"])(*(inputs[n] for n in config["args"]),
                                   **{n: inputs[n] for n in config["keyword_inputs"]},
                                   **kwargs)
    expected = arrays[f"{case}/out/0"]
    assert out.shape == expected.shape and out.dtype == expected.dtype
    np.testing.assert_allclose(out.data, expected, rtol=RTOL, atol=ATOL)
    if grads:
        out.backward(arrays[f"{case}/cotangent/0"])
        for name, ref in grads.items():
            np.testing.assert_allclose(inputs[name].grad, ref, rtol=RTOL, atol=ATOL,
                                       err_msg=f"{case}: gradient wrt {name}")


def test_functional_fixture_holds_only_the_listed_cases() -> None:
    recorded = {k.split("/")[0] for k in _archive("functional.npz")}
    assert recorded == set(FUNCTIONAL_CASES)


def test_functional_is_reachable_as_ops() -> None:
    import tinygrad_attn.ops as ops
    for name in F.__all__:
        assert getattr(ops, name) is getattr(F, name), name
