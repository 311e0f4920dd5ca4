"""nn behaviour: registration and names, state dicts, modes, dtypes, initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tinygrad_attn as ta
import tinygrad_attn.nn.functional as F
from tinygrad_attn import Tensor, nn

LAYER_PARAMS = [  # PyTorch's TransformerEncoderLayer(8, 2, 16): names, order and shapes
    ("self_attn.in_proj_weight", (24, 8)), ("self_attn.in_proj_bias", (24,)),
    ("self_attn.out_proj.weight", (8, 8)), ("self_attn.out_proj.bias", (8,)),
    ("linear1.weight", (16, 8)), ("linear1.bias", (16,)),
    ("linear2.weight", (8, 16)), ("linear2.bias", (8,)),
    ("norm1.weight", (8,)), ("norm1.bias", (8,)),
    ("norm2.weight", (8,)), ("norm2.bias", (8,)),
]


def _encoder(seed: int = 0, dropout: float = 0.0) -> nn.TransformerEncoder:
    ta.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=dropout, batch_first=True)
    return nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8))


def _x(*shape: int, dtype: type = np.float32) -> Tensor:
    return Tensor(np.random.default_rng(1).standard_normal(shape).astype(dtype))


# ---- registration and names ----
def test_encoder_layer_parameters_match_torch_names_order_and_shapes() -> None:
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    assert [(n, p.shape) for n, p in layer.named_parameters()] == LAYER_PARAMS
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in layer.parameters())
    assert layer.num_parameters() == sum(math.prod(s) for _, s in LAYER_PARAMS)


def test_encoder_names_layers_by_position_then_final_norm() -> None:
    names = [n for n, _ in _encoder().named_parameters()]
    expected = ([f"layers.{i}.{n}" for i in range(2) for n, _ in LAYER_PARAMS]
                + ["norm.weight", "norm.bias"])
    assert names == expected


def test_parameter_names_are_set_by_the_first_call() -> None:
    encoder = _encoder()
    weight = encoder.layers[0].self_attn.in_proj_weight
    assert weight.name is None
    encoder(_x(2, 3, 8))
    assert weight.name == "layers.0.self_attn.in_proj_weight"
    assert encoder.layers[1].linear2.bias.name == "layers.1.linear2.bias"
    assert encoder.norm.weight.name == "norm.weight"
    assert all(p.name == n for n, p in encoder.named_parameters())


def test_parameters_added_later_are_named_at_the_next_call() -> None:
    encoder = _encoder()
    encoder(_x(2, 3, 8))
    encoder.extra = nn.Linear(8, 8)
    assert encoder.extra.weight.name is None
    out = encoder(_x(2, 3, 8))
    encoder.extra(out)
    assert encoder.extra.weight.name == "extra.weight"


def test_calling_a_submodule_directly_keeps_the_full_names() -> None:
    encoder = _encoder()
    attn = encoder.layers[0].self_attn
    x = _x(2, 3, 8)
    attn(x, x, x)  # before the root was ever called: names relative to attn
    assert attn.in_proj_weight.name == "in_proj_weight"
    encoder(x)
    assert attn.in_proj_weight.name == "layers.0.self_attn.in_proj_weight"
    attn(x, x, x)  # e.g. to look at one layer's attention weights
    encoder(x)
    assert attn.in_proj_weight.name == "layers.0.self_attn.in_proj_weight"
    assert all(p.name == n for n, p in encoder.named_parameters())


def test_module_list_registers_and_indexes_in_order() -> None:
    blocks = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 4)])
    blocks.append(nn.LayerNorm(4))
    assert len(blocks) == 3
    assert isinstance(blocks[-1], nn.LayerNorm) and blocks[1].out_features == 4
    assert [type(m).__name__ for m in blocks] == ["Linear", "Linear", "LayerNorm"]
    assert [n for n, _ in blocks.named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]


def test_shared_parameter_is_listed_once() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)
            self.b.weight = self.a.weight

    names = [n for n, _ in Tied().named_parameters()]
    assert names == ["a.weight", "a.bias", "b.bias"]


def test_reassigning_an_attribute_unregisters_it() -> None:
    layer = nn.Linear(3, 2)
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_transformer_encoder_layers_start_identical_but_independent() -> None:
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    encoder = nn.TransformerEncoder(layer, 3)
    first = encoder.layers[0].state_dict()
    for i in range(3):
        for name, value in encoder.layers[i].state_dict().items():
            np.testing.assert_array_equal(value, layer.state_dict()[name])
        assert encoder.layers[i] is not layer
    params = [id(p) for p in encoder.parameters()]
    assert len(params) == len(set(params)) == 3 * len(LAYER_PARAMS)
    encoder.layers[0].linear1.weight.data[...] = 7.0
    assert not np.any(encoder.layers[1].linear1.weight.data == 7.0)
    assert not np.any(layer.linear1.weight.data == 7.0)
    np.testing.assert_array_equal(encoder.layers[2].state_dict()["linear1.weight"],
                                  first["linear1.weight"])


# ---- state dicts ----
def test_state_dict_returns_copies_in_parameter_order() -> None:
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    state = layer.state_dict()
    assert [(k, v.shape) for k, v in state.items()] == LAYER_PARAMS
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["linear1.weight"][...] = 5.0
    assert not np.any(layer.linear1.weight.data == 5.0)
    layer.linear1.weight.data[...] = 3.0
    assert not np.any(state["linear1.weight"] == 3.0)


def test_load_state_dict_copies_values_in() -> None:
    a, b = _encoder(0), _encoder(1)
    source = a.state_dict()
    assert not np.array_equal(source["layers.0.linear1.weight"],
                              b.state_dict()["layers.0.linear1.weight"])
    result = b.load_state_dict(source)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, value in b.state_dict().items():
        np.testing.assert_array_equal(value, source[name])
    source["norm.bias"][...] = 9.0  # the model holds its own copy
    assert not np.any(b.norm.bias.data == 9.0)


def test_load_state_dict_accepts_tensors_and_lists() -> None:
    layer = nn.Linear(2, 2)
    layer.load_state_dict({"weight": Tensor(np.eye(2)), "bias": [1.0, 2.0]})
    np.testing.assert_array_equal(layer.weight.data, np.eye(2))
    np.testing.assert_array_equal(layer.bias.data, [1.0, 2.0])


def _assert_unchanged(model: nn.Module, before: dict[str, np.ndarray]) -> None:
    after = model.state_dict()
    assert list(after) == list(before)
    for name, value in after.items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
        assert value.dtype == before[name].dtype


def test_missing_key_raises_naming_it_and_changes_nothing() -> None:
    model = _encoder(0)
    before = model.state_dict()
    state = {k: v + 1.0 for k, v in _encoder(1).state_dict().items()}
    del state["layers.1.norm2.weight"]
    with pytest.raises(ValueError, match=r"layers\.1\.norm2\.weight"):
        model.load_state_dict(state)
    _assert_unchanged(model, before)


def test_unexpected_key_raises_naming_it_and_changes_nothing() -> None:
    model = _encoder(0)
    before = model.state_dict()
    state = {k: v + 1.0 for k, v in before.items()}
    state["layers.2.linear1.weight"] = np.zeros((16, 8))
    with pytest.raises(ValueError, match=r"layers\.2\.linear1\.weight"):
        model.load_state_dict(state)
    _assert_unchanged(model, before)


@pytest.mark.parametrize("strict", [True, False])
def test_wrong_shape_after_good_keys_changes_nothing(strict: bool) -> None:
    model = _encoder(0)
    before = model.state_dict()
    state = {k: v + 1.0 for k, v in before.items()}  # every key good ...
    state["norm.bias"] = np.zeros(9)  # ... except the very last one
    assert list(state)[-1] == "norm.bias"
    with pytest.raises(ValueError) as err:
        model.load_state_dict(state, strict=strict)
    message = str(err.value)
    assert "norm.bias" in message and "(9,)" in message and "(8,)" in message
    _assert_unchanged(model, before)


def test_non_numeric_value_raises_and_changes_nothing() -> None:
    model = nn.TransformerEncoderLayer(8, 2, 16)
    before = model.state_dict()
    state = {k: v + 1.0 for k, v in before.items()}
    state["norm2.bias"] = np.array(["a"] * 8)
    with pytest.raises(TypeError, match="norm2.bias"):
        model.load_state_dict(state)
    _assert_unchanged(model, before)


def test_load_keeps_parameter_dtype() -> None:
    model = nn.TransformerEncoderLayer(8, 2, 16)  # float32
    state = {k: np.random.default_rng(2).standard_normal(v.shape)
             for k, v in model.state_dict().items()}  # float64
    model.load_state_dict(state)
    for name, p in model.named_parameters():
        assert p.dtype == np.float32, name
        np.testing.assert_array_equal(p.data, state[name].astype(np.float32))
    model.double()
    model.load_state_dict(state)
    for name, p in model.named_parameters():
        assert p.dtype == np.float64
        np.testing.assert_array_equal(p.data, state[name])


def test_non_strict_load_reports_missing_and_unexpected_and_loads_the_rest() -> None:
    model = nn.TransformerEncoderLayer(8, 2, 16)
    before = model.state_dict()
    state = {"linear1.bias": np.full(16, 2.0), "decoder.weight": np.ones(3)}
    result = model.load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["decoder.weight"]
    assert result.missing_keys == [n for n, _ in LAYER_PARAMS if n != "linear1.bias"]
    np.testing.assert_array_equal(model.linear1.bias.data, np.full(16, 2.0))
    np.testing.assert_array_equal(model.linear2.weight.data, before["linear2.weight"])


# ---- modes, gradients, dtypes ----
def test_train_and_eval_set_every_submodule() -> None:
    encoder = _encoder()
    assert all(m.training for m in encoder.modules())
    assert encoder.eval() is encoder
    assert not any(m.training for m in encoder.modules())
    encoder.train()
    assert all(m.training for m in encoder.modules())
    encoder.train(False)
    assert not encoder.layers[1].dropout.training


def test_dropout_module_drops_in_training_only() -> None:
    ta.manual_seed(0)
    drop = nn.Dropout(0.25)
    x = Tensor(np.ones((200, 50)))
    y = drop(x).data
    zero_fraction = np.mean(y == 0)
    assert 0.22 < zero_fraction < 0.28
    np.testing.assert_allclose(y[y != 0], 1 / 0.75)
    drop.eval()
    np.testing.assert_array_equal(drop(x).data, x.data)


def test_encoder_dropout_is_random_in_training_and_off_in_eval() -> None:
    noisy = _encoder(0, dropout=0.5)
    clean = _encoder(0, dropout=0.0)
    x = _x(2, 5, 8)
    first, second = noisy(x).data, noisy(x).data
    assert not np.allclose(first, second)
    noisy.eval()
    np.testing.assert_array_equal(noisy(x).data, noisy(x).data)
    np.testing.assert_allclose(noisy(x).data, clean(x).data, rtol=1e-6, atol=1e-6)
    attn = noisy.layers[0].self_attn
    out, weights = attn(x, x, x)
    np.testing.assert_allclose(weights.data.sum(-1), 1.0, rtol=1e-6)


def test_zero_grad_clears_every_gradient() -> None:
    encoder = _encoder()
    encoder(_x(2, 3, 8)).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape
               for p in encoder.parameters())
    assert any(np.any(p.grad != 0) for p in encoder.parameters())
    encoder.zero_grad()
    assert all(p.grad is None for p in encoder.parameters())


def test_casting_every_parameter() -> None:
    encoder = _encoder()
    assert {p.dtype for p in encoder.parameters()} == {np.dtype(np.float32)}
    encoder(_x(2, 3, 8)).sum().backward()
    assert encoder.double() is encoder
    assert {p.dtype for p in encoder.parameters()} == {np.dtype(np.float64)}
    assert {p.grad.dtype for p in encoder.parameters()} == {np.dtype(np.float64)}
    assert encoder(_x(2, 3, 8, dtype=np.float64)).dtype == np.float64
    encoder.float()
    assert {p.dtype for p in encoder.parameters()} == {np.dtype(np.float32)}
    assert encoder(_x(2, 3, 8)).dtype == np.float32
    encoder.to(np.float64)
    assert {p.dtype for p in encoder.parameters()} == {np.dtype(np.float64)}
    assert all(p.requires_grad for p in encoder.parameters())
    with pytest.raises(TypeError, match="int32"):
        encoder.to(np.int32)


def test_positional_encoding_buffer_follows_the_dtype() -> None:
    pe = nn.PositionalEncoding(8, max_len=10)
    assert pe.pe.dtype == np.float32 and list(pe.parameters()) == []
    assert [n for n, _ in pe.named_buffers()] == ["pe"] and pe.state_dict() == {}
    pe.double()
    assert pe.pe.dtype == np.float64
    out = pe(Tensor(np.zeros((1, 3, 8))))
    np.testing.assert_allclose(out.data[0, 1, :2], [math.sin(1.0), math.cos(1.0)])


# ---- initialisation (PyTorch's rules) ----
def _assert_uniform(values: np.ndarray, bound: float) -> None:
    """U(-bound, bound): inside the bound, reaching near it, std bound/sqrt(3)."""
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.97 * bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.05 * bound / math.sqrt(3)
    assert abs(values.mean()) < 0.05 * bound


def test_linear_init_bound_is_one_over_sqrt_fan_in() -> None:
    ta.manual_seed(0)
    layer = nn.Linear(64, 512)
    assert layer.weight.dtype == np.float32 and layer.weight.shape == (512, 64)
    _assert_uniform(layer.weight.data, 1 / 8)
    _assert_uniform(layer.bias.data, 1 / 8)


def test_attention_init_follows_torch() -> None:
    ta.manual_seed(0)
    attn = nn.MultiheadAttention(64, 4)
    # xavier_uniform_ on the (3E, E) stacked weight: sqrt(6 / (E + 3E)).
    _assert_uniform(attn.in_proj_weight.data, math.sqrt(6 / (64 + 192)))
    _assert_uniform(attn.out_proj.weight.data, 1 / 8)
    np.testing.assert_array_equal(attn.in_proj_bias.data, np.zeros(192))
    np.testing.assert_array_equal(attn.out_proj.bias.data, np.zeros(64))
    no_bias = nn.MultiheadAttention(64, 4, bias=False)
    assert [n for n, _ in no_bias.named_parameters()] == ["in_proj_weight",
                                                          "out_proj.weight"]


def test_layer_norm_and_embedding_init() -> None:
    ta.manual_seed(0)
    norm = nn.LayerNorm(6)
    np.testing.assert_array_equal(norm.weight.data, np.ones(6))
    np.testing.assert_array_equal(norm.bias.data, np.zeros(6))
    embedding = nn.Embedding(200, 64)
    assert embedding.weight.dtype == np.float32
    assert abs(embedding.weight.data.mean()) < 0.02
    assert abs(embedding.weight.data.std() - 1.0) < 0.02


def test_encoder_layer_init_and_seeding_are_reproducible() -> None:
    ta.manual_seed(3)
    a = nn.TransformerEncoderLayer(32, 4, 64)
    ta.manual_seed(3)
    b = nn.TransformerEncoderLayer(32, 4, 64)
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[name], err_msg=name)
    _assert_uniform(a.linear1.weight.data, 1 / math.sqrt(32))
    _assert_uniform(a.linear2.weight.data, 1 / 8)
    np.testing.assert_array_equal(a.norm2.weight.data, np.ones(32))


# ---- argument checking ----
def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerEncoderLayer(8, 2, activation="swish")
    attn = nn.MultiheadAttention(8, 2)
    x = _x(5, 2, 8)  # (L, B, E): PyTorch's default layout
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(2, 4\)"):
        attn(x, x, x, key_padding_mask=np.zeros((2, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(5, 4\)"):
        attn(x, x, x, attn_mask=np.zeros((5, 4), dtype=bool))
    with pytest.raises(TypeError, match="int64"):
        attn(x, x, x, attn_mask=np.zeros((5, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"query \(5, 2, 8\), key \(5, 3, 8\)"):
        attn(x, _x(5, 3, 8), _x(5, 3, 8))  # batch sizes differ


def test_custom_activation_callable() -> None:
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=lambda t: t * 0.0)
    x = _x(2, 3, 8)
    after_attention = layer.norm1(x + layer._sa_block(x, None, None, False))
    expected = layer.norm2(after_attention + layer.linear2.bias)  # ff(x) = linear2(0)
    np.testing.assert_allclose(layer(x).data, expected.data, rtol=1e-5, atol=1e-5)


def test_unsupported_pytorch_options_raise_naming_them() -> None:
    for option in ({"add_bias_kv": True}, {"add_zero_attn": True}, {"kdim": 4}):
        with pytest.raises(ValueError, match=list(option)[0]):
            nn.MultiheadAttention(8, 2, **option)
    nn.MultiheadAttention(8, 2, kdim=8, vdim=8, device="cpu")  # what we do support
    with pytest.raises(ValueError, match="cuda"):
        nn.Linear(2, 2, device="cuda")
    with pytest.raises(ValueError, match="cuda"):
        nn.Linear(2, 2).to("cuda")
    with pytest.raises(ValueError, match="inplace"):
        nn.Dropout(0.1, inplace=True)
    with pytest.raises(ValueError, match="max_norm"):
        F.embedding(np.array([0]), Tensor(np.ones((2, 2))), max_norm=1.0)
    with pytest.raises(TypeError, match="positional"):
        nn.CrossEntropyLoss(None, None)  # PyTorch's deprecated positionals: keyword only
    with pytest.raises(ValueError, match="assign"):
        nn.Linear(2, 2).load_state_dict(nn.Linear(2, 2).state_dict(), assign=True)


def test_torch_positional_order_of_the_encoder_layer_and_attention() -> None:
    """The calls the PyTorch docs write, positionally, mean the same thing here."""
    layer = nn.TransformerEncoderLayer(8, 2, 16, 0.0, "gelu", 1e-3, True, True, False)
    assert layer.self_attn.batch_first and layer.norm_first
    assert layer.norm1.eps == 1e-3 and layer.linear1.bias is None
    attn = nn.MultiheadAttention(8, 2, 0.0, False)
    assert attn.in_proj_bias is None and not attn.batch_first
    x = _x(3, 1, 8)
    mask = np.array([[False, False, True]])
    out, weights = attn(x, x, x, mask, False)  # key_padding_mask, need_weights
    assert weights is None and out.shape == (3, 1, 8)
    _, weights = attn(x, x, x, None, True, None, False)  # ..., average_attn_weights
    assert weights.shape == (1, 2, 3, 3)
