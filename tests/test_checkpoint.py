"""Checkpoints: safetensors and .npz round trips, nesting, PyTorch interchange, resuming a
run bit for bit, and atomic writes. Malicious and corrupt files: test_checkpoint_adversarial.

``tests/fixtures/checkpoint.npz`` (scripts/make_fixtures.py) holds a PyTorch layer's
``safetensors.torch.save`` bytes, an input and PyTorch's output.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import tinygrad_attn as ta
from tinygrad_attn import Tensor, nn, ops, optim
from tinygrad_attn.optim import lr_scheduler

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "checkpoint.npz")


def _model(seed: int) -> nn.Module:
    ta.manual_seed(seed)
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0,
                                                            batch_first=True), 2,
                                 norm=nn.LayerNorm(8))


def _layer() -> nn.Module:
    ta.manual_seed(0)
    return nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)


def _header(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n])


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".checkpoint-"))


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


@pytest.mark.parametrize("name", ["model.safetensors", "model.npz", "model.ckpt"])
def test_round_trip_restores_a_model(tmp_path: Path, name: str) -> None:
    source, target = _model(0), _model(1)
    path = tmp_path / name
    ta.save(source.state_dict(), path)
    loaded = ta.load(path)
    assert list(loaded) == list(source.state_dict())
    target.load_state_dict(loaded)
    for (key, a), (_, b) in zip(source.named_parameters(), target.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=key)
        assert b.dtype == np.float32
    x = Tensor(np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32))
    np.testing.assert_array_equal(source(x).data, target(x).data)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["s.safetensors", "s.npz"])
def test_round_trip_keeps_dtypes_shapes_and_accepts_tensors(tmp_path: Path,
                                                            name: str) -> None:
    state = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "b": np.float32(1.5),
             "c": np.array([1, 2], dtype=np.int64), "d": np.array([True, False]),
             "t": Tensor(np.ones((2, 2), dtype=np.float32)), "e": np.zeros((0, 3)),
             "f": np.arange(12, dtype=np.int32).reshape(3, 4).T,  # not contiguous
             "g": np.arange(3, dtype=">f4"), "h": np.array(7, dtype=np.uint8)}
    ta.save(state, str(tmp_path / name))
    loaded = ta.load(str(tmp_path / name))
    assert list(loaded) == list(state)
    for key, value in state.items():
        expected = value.data if isinstance(value, Tensor) else np.asarray(value)
        assert loaded[key].shape == expected.shape, key
        assert loaded[key].dtype == expected.dtype.newbyteorder("="), key
        np.testing.assert_array_equal(loaded[key], expected)
        assert loaded[key].flags.writeable


def test_nested_state_with_plain_values_round_trips_exactly(tmp_path: Path) -> None:
    state = {"model": {"layer.weight": np.ones((2, 3), dtype=np.float32)},
             "optim": {"state": {0: {"step": np.array(3.0, dtype=np.float32),
                                     "exp_avg": np.full(3, 0.5)}},
                       "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8,
                                         "amsgrad": False, "foreach": None, "params": [0, 1],
                                         "initial_lr": 1 / 3}]},
             "sched": {"last_epoch": 3, "_last_lr": [0.1], "lr_lambdas": [None, {"k": 2}]},
             "notes": "epoch 3", "empty": {}, "nan": float("nan"), 0: np.zeros(1),
             "0": np.ones(1), "a/b": np.full(1, 2.0), "a": {"b": np.full(1, 3.0)},
             "100%": np.full(1, 4.0), "": np.full(1, 5.0)}
    path = tmp_path / "run.safetensors"
    ta.save(state, path)
    loaded = ta.load(path)
    assert list(loaded) == list(state)
    group = loaded["optim"]["param_groups"][0]
    assert group == {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False,
                     "foreach": None, "params": [0, 1], "initial_lr": 1 / 3}
    assert type(group["betas"]) is tuple and type(group["params"]) is list
    assert list(loaded["optim"]["state"]) == [0]  # an int key stays an int
    step = loaded["optim"]["state"][0]["step"]
    assert step.dtype == np.float32 and step.shape == () and float(step) == 3.0
    assert loaded["sched"] == state["sched"] and loaded["notes"] == "epoch 3"
    assert loaded["empty"] == {} and np.isnan(loaded["nan"])
    for key in (0, "0", "a/b", "100%", ""):
        np.testing.assert_array_equal(loaded[key], state[key])
    np.testing.assert_array_equal(loaded["a"]["b"], [3.0])
    # the tensor names: nested keys joined by "/", a "/" inside a key escaped
    names = set(load_file(str(path)))
    assert {"model/layer.weight", "optim/state/0/exp_avg", "a%2Fb", "a/b",
            "100%25"} <= names


def test_saved_state_dict_has_exactly_its_keys_for_pytorch(tmp_path: Path,
                                                           fixture: dict[str, np.ndarray]
                                                           ) -> None:
    """What PyTorch's ``safetensors.torch.load_file`` reads: our file's tensor table
    (names, dtypes, shapes) equals that of the file PyTorch itself wrote for the layer."""
    torch_path = tmp_path / "torch.safetensors"
    torch_path.write_bytes(fixture["torch_file"].tobytes())
    ours = _layer()
    ours.load_state_dict(ta.load(torch_path))
    path = tmp_path / "m.safetensors"
    ta.save(ours.state_dict(), path)
    ours_header, torch_header = _header(path), _header(torch_path)
    assert set(ours_header.pop("__metadata__")) == {"tinygrad_attn"}
    torch_header.pop("__metadata__", None)
    table = {k: (v["dtype"], v["shape"]) for k, v in ours_header.items()}
    assert table == {k: (v["dtype"], v["shape"]) for k, v in torch_header.items()}
    assert set(load_file(str(path))) == set(ours.state_dict())
    for key, value in load_file(str(path)).items():
        np.testing.assert_array_equal(value, load_file(str(torch_path))[key], err_msg=key)


def test_pytorch_safetensors_file_loads_and_gives_pytorchs_outputs(
        tmp_path: Path, fixture: dict[str, np.ndarray]) -> None:
    path = tmp_path / "torch.safetensors"
    path.write_bytes(fixture["torch_file"].tobytes())
    state = ta.load(path)
    layer = _layer()
    assert set(state) == set(layer.state_dict())
    layer.load_state_dict(state)
    layer.train()
    out = layer(Tensor(fixture["input"].astype(np.float32)))
    np.testing.assert_allclose(out.data, fixture["output"], rtol=1e-5, atol=1e-5)


def _torch_python() -> str | None:
    """An interpreter with PyTorch: this one, or TINYGRAD_ATTN_TORCH_PYTHON."""
    try:
        import torch  # noqa: F401
        return sys.executable
    except ImportError:
        return os.environ.get("TINYGRAD_ATTN_TORCH_PYTHON")


_TORCH_SCRIPT = """
import sys, numpy as np, torch
from safetensors.torch import load_file
torch.manual_seed(0)
layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
layer.load_state_dict(load_file(sys.argv[1]), strict=True)
layer.train()
x = torch.from_numpy(np.load(sys.argv[2]))
with torch.no_grad():
    np.save(sys.argv[3], layer(x).numpy())
"""


@pytest.mark.skipif(_torch_python() is None, reason="PyTorch is not installed (set "
                    "TINYGRAD_ATTN_TORCH_PYTHON to an interpreter that has it)")
def test_checkpoint_loads_in_pytorch_with_strict_load_state_dict(tmp_path: Path) -> None:
    layer = _layer()
    ta.save(layer.state_dict(), tmp_path / "m.safetensors")
    x = np.random.default_rng(3).standard_normal((2, 5, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    subprocess.run([_torch_python(), "-c", _TORCH_SCRIPT, str(tmp_path / "m.safetensors"),
                    str(tmp_path / "x.npy"), str(tmp_path / "out.npy")], check=True,
                   timeout=120)
    layer.train()
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), layer(Tensor(x)).data,
                               rtol=1e-5, atol=1e-5)


def _train(model: nn.Module, opt: optim.Optimizer, sched: lr_scheduler.LRScheduler,
           steps: range) -> list[float]:
    losses = []
    for step in steps:
        rng = np.random.default_rng(step)  # each step's batch depends on the step alone
        x = Tensor(rng.standard_normal((4, 5, 8)).astype(np.float32))
        y = rng.integers(0, 8, size=4 * 5)
        opt.zero_grad()
        loss = ops.cross_entropy(model(x).reshape(20, 8), y)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.data))
    return losses


def _run(seed: int) -> tuple[nn.Module, optim.Optimizer, lr_scheduler.LRScheduler]:
    model = _model(seed)
    opt = optim.Adam([{"params": list(model.parameters())[:4]},
                      {"params": list(model.parameters())[4:], "lr": 3e-3}], lr=1e-2,
                     weight_decay=0.01, amsgrad=True)
    return model, opt, lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=1e-4)


def test_resuming_from_a_checkpoint_is_bit_for_bit(tmp_path: Path) -> None:
    model, opt, sched = _run(0)
    straight = _train(model, opt, sched, range(6))

    model, opt, sched = _run(0)
    first = _train(model, opt, sched, range(3))
    ta.save({"model": model.state_dict(), "optim": opt.state_dict(),
             "sched": sched.state_dict()}, tmp_path / "run.safetensors")
    model2, opt2, sched2 = _run(1)  # other weights, fresh optimizer and scheduler
    state = ta.load(tmp_path / "run.safetensors")
    model2.load_state_dict(state["model"])
    opt2.load_state_dict(state["optim"])
    sched2.load_state_dict(state["sched"])
    assert first + _train(model2, opt2, sched2, range(3, 6)) == straight

    model, opt, sched = _run(0)
    _train(model, opt, sched, range(6))
    for (key, a), b in zip(model.named_parameters(), model2.parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=key)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_save_refuses_a_module_and_unstorable_values(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"Linear.*state_dict\(\)"):
        ta.save(nn.Linear(2, 2), tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match=r"state_dict\(\)"):
        ta.save(optim.SGD([nn.Parameter(np.ones(1))]), tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match=r"\['bad'\].*object"):
        ta.save({"ok": np.ones(2), "bad": np.array([{"x": 1}], dtype=object)},
                tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match=r"\['a'\]\[0\].*set"):
        ta.save({"a": [{1, 2}]}, tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match="complex128"):
        ta.save({"c": np.ones(2, dtype=complex)}, tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match=r"\.npz.*\['lr'\].*safetensors"):
        ta.save({"w": np.ones(2), "lr": 0.1}, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_failed_load_state_dict_from_checkpoint_leaves_model_intact(tmp_path: Path) -> None:
    small = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    ta.save(small.state_dict(), tmp_path / "small.safetensors")
    big = nn.TransformerEncoderLayer(8, 2, 32, batch_first=True)  # linear shapes differ
    before = big.state_dict()
    with pytest.raises(ValueError, match="linear1.weight"):
        big.load_state_dict(ta.load(tmp_path / "small.safetensors"))
    for key, value in big.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
