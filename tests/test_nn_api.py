"""PyTorch's Module API: buffers and state dicts, containers, printing, modes, nn.init,
nn.utils.clip_grad_norm_, the activation and loss modules, and mask dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_attn as ta
import tinygrad_attn.nn.functional as F
from tinygrad_attn import Tensor, nn


class WithBuffers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 2)
        self.register_buffer("steps", Tensor(np.zeros(2)))
        self.register_buffer("scratch", Tensor(np.ones(4)), persistent=False)


def test_buffers_are_listed_and_persistent_ones_are_in_the_state_dict() -> None:
    m = WithBuffers()
    assert [n for n, _ in m.named_buffers()] == ["steps", "scratch"]
    # PyTorch's order: a module's own parameters and buffers, then its children's.
    assert list(m.state_dict()) == ["steps", "proj.weight", "proj.bias"]
    assert [n for n, _ in m.named_parameters()] == ["proj.weight", "proj.bias"]
    m.steps = Tensor(np.full(2, 3.0))  # assigning to a buffer's name replaces the buffer
    np.testing.assert_array_equal(m.state_dict()["steps"], [3.0, 3.0])
    with pytest.raises(TypeError, match="steps"):
        m.steps = np.zeros(2)
    with pytest.raises(TypeError, match="ndarray"):
        m.register_buffer("raw", np.zeros(2))


def test_load_state_dict_copies_into_buffers_bumps_versions_and_keeps_arrays() -> None:
    m = WithBuffers()
    arrays = {n: t.data for n, t in m._state_tensors()}
    versions = {n: t._version for n, t in m._state_tensors()}
    state = {k: v + 1 for k, v in m.state_dict().items()}
    m.load_state_dict(state)
    for name, t in m._state_tensors():
        assert t.data is arrays[name], name  # copied into, not replaced
        assert t._version == versions[name] + 1
        np.testing.assert_array_equal(t.data, state[name].astype(t.dtype))
    assert m.steps.dtype == np.float64 and m.proj.weight.dtype == np.float32


def test_state_dict_errors_are_runtime_errors_naming_key_and_shapes() -> None:
    m = WithBuffers()
    with pytest.raises(RuntimeError, match=r"size mismatch for steps.*\(3,\).*\(2,\)"):
        m.load_state_dict({**m.state_dict(), "steps": np.zeros(3)})
    with pytest.raises(RuntimeError, match=r"missing keys \['steps'\]"):
        m.load_state_dict({k: v for k, v in m.state_dict().items() if k != "steps"})


def test_tied_weights_appear_under_both_names_in_the_state_dict() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(5, 3)
            self.head = nn.Linear(3, 5, bias=False)
            self.head.weight = self.embed.weight

    m = Tied()
    assert list(m.state_dict()) == ["embed.weight", "head.weight"]  # as PyTorch's
    assert [n for n, _ in m.named_parameters()] == ["embed.weight"]
    m.load_state_dict({"embed.weight": np.ones((5, 3)), "head.weight": np.ones((5, 3))})


def test_containers() -> None:
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and isinstance(seq[-1], nn.Linear)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                      "2.bias"]
    x = Tensor(np.ones((2, 4), dtype=np.float32))
    np.testing.assert_allclose(seq(x).data, seq[2](seq[1](seq[0](x))).data)
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    heads = nn.ModuleDict({"q": nn.Linear(2, 2), "k": nn.Linear(2, 2)})
    heads["v"] = nn.Linear(2, 3)
    assert list(heads) == ["q", "k", "v"] and "v" in heads and len(heads) == 3
    assert [n for n, _ in heads.named_parameters()][-1] == "v.bias"
    assert [type(c).__name__ for c in seq.children()] == ["Linear", "ReLU", "Linear"]
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1", "2"]


def test_repr_is_pytorch_s() -> None:
    # Strings printed by PyTorch 2.13 for the same modules.
    assert repr(nn.Sequential(nn.Linear(2, 2), nn.ReLU())) == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=2, bias=True)\n  (1): ReLU()\n)")
    assert repr(nn.LayerNorm(8, bias=False)) == (
        "LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=False)")
    assert repr(nn.Embedding(10, 4, padding_idx=0)) == "Embedding(10, 4, padding_idx=0)"
    assert repr(nn.Dropout(0.1)) == "Dropout(p=0.1, inplace=False)"
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.Softmax(dim=-1)) == "Softmax(dim=-1)"
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2)
    lines = repr(encoder).split("\n")
    assert lines[:4] == ["TransformerEncoder(", "  (layers): ModuleList(",
                         "    (0-1): 2 x TransformerEncoderLayer(",
                         "      (self_attn): MultiheadAttention("]
    assert lines[5] == "      )"
    assert "NonDynamicallyQuantizableLinear(in_features=8, out_features=8, bias=True)" \
        in lines[4]


def test_modes_gradients_and_apply() -> None:
    seq = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    seq.eval()
    assert not seq[1].training
    seq(Tensor(np.ones((1, 2), dtype=np.float32))).sum().backward()
    seq.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in seq.parameters())
    seq.zero_grad()
    assert all(p.grad is None for p in seq.parameters())
    seq.requires_grad_(False)
    assert not any(p.requires_grad for p in seq.parameters())
    visited: list[str] = []
    assert seq.apply(lambda m: visited.append(type(m).__name__)) is seq
    assert visited == ["Linear", "Dropout", "Sequential"]
    assert seq.cpu() is seq and seq.to("cpu") is seq
    seq.to("cpu", np.float64)
    assert seq[0].weight.dtype == np.float64


def test_attention_merges_a_bool_padding_and_float_mask_in_float32() -> None:
    attn = nn.MultiheadAttention(8, 2, batch_first=True)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32))
    padding = np.array([[False, False, True], [False, False, False]])
    float_mask = np.zeros((3, 3), dtype=np.float32)
    out, weights = attn(x, x, x, key_padding_mask=padding, attn_mask=float_mask)
    assert out.dtype == np.float32 and weights.dtype == np.float32
    np.testing.assert_array_equal(weights.data[0, :, 2], 0.0)
    out, _ = attn(x, x, x, key_padding_mask=padding, attn_mask=float_mask,
                  need_weights=False)
    assert out.dtype == np.float32


# ---- nn.init ----
def test_init_bounds_fans_and_versions() -> None:
    ta.manual_seed(0)
    w = Tensor(np.zeros((300, 200), dtype=np.float32), requires_grad=True)
    assert nn.init.xavier_uniform_(w, gain=2.0) is w and w._version == 1
    bound = 2.0 * math.sqrt(6 / 500)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.99 * bound
    assert w.dtype == np.float32 and w.requires_grad and w.is_leaf
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.data.std() - math.sqrt(2) / math.sqrt(300)) < 0.01 * math.sqrt(2 / 300)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # Linear's rule: 1/sqrt(fan_in)
    assert np.abs(w.data).max() <= 1 / math.sqrt(200)
    nn.init.xavier_normal_(w)
    assert abs(w.data.std() - math.sqrt(2 / 500)) < 0.02 * math.sqrt(2 / 500)
    nn.init.trunc_normal_(w, mean=1.0, std=2.0, a=0.0, b=1.5)
    assert w.data.min() >= 0.0 and w.data.max() <= 1.5
    conv = Tensor(np.zeros((4, 3, 5, 5)))
    assert nn.init._calculate_fan_in_and_fan_out(conv) == (75, 100)
    nn.init.constant_(w, 0.25)
    np.testing.assert_array_equal(w.data, 0.25)
    nn.init.zeros_(w), nn.init.ones_(w)
    assert w._version == 8
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(Tensor(np.zeros(3)))
    assert nn.init.calculate_gain("tanh") == 5 / 3
    assert nn.init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)


def test_init_is_reproducible_under_manual_seed() -> None:
    values = []
    for _ in range(2):
        ta.manual_seed(4)
        values.append(nn.init.normal_(Tensor(np.zeros(5)), 2.0, 0.5).data.copy())
    np.testing.assert_array_equal(*values)


# ---- nn.utils ----
def test_clip_grad_norm_scales_every_gradient_and_returns_the_total_norm() -> None:
    a = Tensor(np.zeros(3, dtype=np.float32), requires_grad=True)
    b = Tensor(np.zeros((2, 2), dtype=np.float32), requires_grad=True)
    c = Tensor(np.zeros(2, dtype=np.float32), requires_grad=True)  # no grad: skipped
    a.grad = np.array([3.0, 0.0, 0.0], dtype=np.float32)
    b.grad = np.full((2, 2), 2.0, dtype=np.float32)
    total = nn.utils.clip_grad_norm_([a, b, c], max_norm=1.0)
    assert isinstance(total, Tensor) and total.dtype == np.float32
    np.testing.assert_allclose(total.item(), 5.0)
    np.testing.assert_allclose(a.grad, [3 / (5 + 1e-6), 0, 0], rtol=1e-6)
    assert c.grad is None
    np.testing.assert_allclose(nn.utils.clip_grad_norm_(a, 10.0, norm_type=math.inf).item(),
                               0.6, rtol=1e-5)
    np.testing.assert_allclose(a.grad, [3 / (5 + 1e-6), 0, 0], rtol=1e-6)  # under max
    a.grad[0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([a], 1.0, error_if_nonfinite=True)


# ---- modules of functions ----
def test_activation_and_loss_modules_match_the_functions() -> None:
    x = Tensor(np.linspace(-2, 2, 12).reshape(3, 4))
    for module, fn in [(nn.ReLU(), F.relu), (nn.Tanh(), F.tanh), (nn.Sigmoid(), F.sigmoid),
                       (nn.SiLU(), F.silu), (nn.GELU("tanh"), lambda t: F.gelu(t, "tanh")),
                       (nn.Softmax(dim=0), lambda t: F.softmax(t, 0)),
                       (nn.Identity(54, unused=1), lambda t: t)]:
        np.testing.assert_array_equal(module(x).data, fn(x).data)
    target = np.array([0, 3, 1])
    weight = Tensor(np.array([1.0, 2.0, 0.5, 1.0]))
    loss = nn.CrossEntropyLoss(weight, label_smoothing=0.1, reduction="sum")
    assert list(loss.state_dict()) == ["weight"]
    np.testing.assert_array_equal(loss(x, target).data, F.cross_entropy(
        x, target, weight, label_smoothing=0.1, reduction="sum").data)
    np.testing.assert_array_equal(nn.MSELoss(reduction="none")(x, 1.0).data,
                                  (x.data - 1.0) ** 2)


def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient() -> None:
    ta.manual_seed(0)
    embedding = nn.Embedding(5, 3, padding_idx=-1)
    assert embedding.padding_idx == 4
    np.testing.assert_array_equal(embedding.weight.data[4], 0.0)
    out = embedding(np.array([[4, 1, 4], [1, 0, 2]]))
    out.sum().backward()
    np.testing.assert_array_equal(embedding.weight.grad[:, 0], [1, 2, 1, 0, 0])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 5\)"):
        embedding(np.array([5]))


def test_one_hot_and_cross_entropy_with_probability_targets_agree() -> None:
    logits = Tensor(np.random.default_rng(1).standard_normal((4, 3)))
    labels = Tensor(np.array([0, 2, 1, 1]))
    hot = F.one_hot(labels, 3)
    assert hot.dtype == np.int64 and hot.shape == (4, 3)
    np.testing.assert_allclose(F.cross_entropy(logits, hot.data.astype(np.float64)).data,
                               F.cross_entropy(logits, labels).data, rtol=1e-12)
