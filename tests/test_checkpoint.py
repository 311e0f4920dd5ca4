"""Checkpoints: save/load round trips, atomic writes, and refusing pickles and junk."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import Tensor, nn


def _model(seed: int) -> nn.Module:
    ta.manual_seed(seed)
    return nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2,
                                 norm=nn.LayerNorm(8))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".checkpoint-"))


def test_round_trip_restores_a_model(tmp_path: Path) -> None:
    source, target = _model(0), _model(1)
    path = tmp_path / "model.npz"
    ta.save(source.state_dict(), path)
    loaded = ta.load(path)
    assert list(loaded) == [name for name, _ in source.named_parameters()]
    target.load_state_dict(loaded)
    for (name, a), (_, b) in zip(source.named_parameters(), target.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
        assert b.dtype == np.float32
    x = Tensor(np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32))
    np.testing.assert_array_equal(source(x).data, target(x).data)
    assert _leftovers(tmp_path) == []


def test_round_trip_keeps_dtypes_shapes_and_accepts_tensors(tmp_path: Path) -> None:
    state = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "b": np.float32(1.5),
             "c": np.array([1, 2], dtype=np.int64), "d": np.array([True, False]),
             "t": Tensor(np.ones((2, 2), dtype=np.float32))}
    ta.save(state, str(tmp_path / "s.npz"))
    loaded = ta.load(str(tmp_path / "s.npz"))
    assert set(loaded) == set(state)
    for name, value in state.items():
        expected = value.data if isinstance(value, Tensor) else np.asarray(value)
        assert loaded[name].dtype == expected.dtype and loaded[name].shape == expected.shape
        np.testing.assert_array_equal(loaded[name], expected)


def test_save_refuses_object_arrays_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'bad'"):
        ta.save({"ok": np.ones(2), "bad": np.array([{"x": 1}], dtype=object)},
                tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def _partial_savez(file: Any, *args: Any, **kwargs: Any) -> None:
    file.write(b"PK\x03\x04 half a checkpoint")  # the start of a zip, then a crash
    raise OSError("disk full (simulated)")


@pytest.mark.parametrize("error", [OSError, KeyboardInterrupt])
def test_interrupted_write_leaves_old_checkpoint_intact(tmp_path: Path, error: type,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    path = tmp_path / "model.npz"
    old = {"w": np.arange(4.0)}
    ta.save(old, path)
    before = path.read_bytes()

    def crash(file: Any, *args: Any, **kwargs: Any) -> None:
        file.write(b"PK\x03\x04 half a checkpoint")
        raise error("simulated crash")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(error):
        ta.save({"w": np.zeros(4)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    np.testing.assert_array_equal(ta.load(path)["w"], old["w"])
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_interrupted_rename_leaves_old_checkpoint_intact(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    path = tmp_path / "model.npz"
    ta.save({"w": np.arange(4.0)}, path)
    before = path.read_bytes()

    def fail(src: Any, dst: Any) -> None:
        raise OSError("rename failed (simulated)")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="simulated"):
        ta.save({"w": np.zeros(4)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def test_interrupted_first_save_creates_no_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(np, "savez", _partial_savez)
    with pytest.raises(OSError, match="simulated"):
        ta.save({"w": np.zeros(4)}, tmp_path / "new.npz")
    assert list(tmp_path.iterdir()) == []


def test_pickled_object_array_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, w=np.ones(3), payload=np.array([{"run": "me"}], dtype=object))
    with pytest.raises(ValueError, match="pickle") as err:
        ta.load(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04junk",
                                     b"\x93NUMPY\x01\x00"])
def test_junk_file_raises_value_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="junk.npz"):
        ta.load(path)


def test_plain_npy_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.ones(3))
    with pytest.raises(ValueError, match="not an .npz checkpoint"):
        ta.load(tmp_path / "w.npy")


def test_truncated_and_corrupted_archives_raise_value_error(tmp_path: Path) -> None:
    path = tmp_path / "good.npz"
    np.savez_compressed(path, w=np.random.default_rng(0).random((60, 60)))
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.npz"):
        ta.load(tmp_path / "truncated.npz")
    for offset in (120, len(data) // 2):  # inside the deflate stream: zlib or CRC errors
        broken = bytearray(data)
        broken[offset:offset + 40] = bytes(40)
        (tmp_path / "broken.npz").write_bytes(bytes(broken))
        with pytest.raises(ValueError, match="broken.npz"):
            ta.load(tmp_path / "broken.npz")


def test_archive_with_a_non_array_member_raises_value_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.ones(3))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", buffer.getvalue())
        archive.writestr("notes.txt", "not an array")
    with pytest.raises(ValueError, match="notes.txt"):
        ta.load(path)


def test_failed_load_state_dict_from_checkpoint_leaves_model_intact(tmp_path: Path) -> None:
    small = nn.TransformerEncoderLayer(8, 2, 16)
    ta.save(small.state_dict(), tmp_path / "small.npz")
    big = nn.TransformerEncoderLayer(8, 2, 32)  # linear1/linear2 shapes differ
    before = big.state_dict()
    with pytest.raises(ValueError, match="linear1.weight"):
        big.load_state_dict(ta.load(tmp_path / "small.npz"))
    for name, value in big.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
