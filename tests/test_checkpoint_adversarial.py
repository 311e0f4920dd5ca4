"""Checkpoints under attack and accident: saving never loses a key or leaks a file, and
loading never executes code nor allocates what a file merely claims. Every malicious or
corrupt file is made here, by the test itself."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import checkpoint

FORMATS = ["ckpt.safetensors", "ckpt.npz"]


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---- saving never loses ----
@pytest.mark.parametrize("name", FORMATS)
def test_every_key_survives_whatever_its_name(tmp_path: Path, name: str) -> None:
    keys = ["allow_pickle", "file", "fix_imports", "args", "kwds", "compress", "self",
            "__metadata__", "a.b", "x.npy", " ", "ünïcode", "%2F"]
    state = {k: np.full(2, float(i)) for i, k in enumerate(keys)}
    ta.save(state, tmp_path / name)
    loaded = ta.load(tmp_path / name)
    assert list(loaded) == keys
    for i, key in enumerate(keys):
        np.testing.assert_array_equal(loaded[key], np.full(2, float(i)), err_msg=key)


# ---- saving never leaks ----
@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664])
def test_replacing_a_file_keeps_its_mode(tmp_path: Path, name: str, mode: int) -> None:
    path = tmp_path / name
    ta.save({"w": np.zeros(2)}, path)
    os.chmod(path, mode)
    ta.save({"w": np.ones(2)}, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    np.testing.assert_array_equal(ta.load(path)["w"], np.ones(2))


def test_a_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        ta.save({"w": np.zeros(2)}, tmp_path / "new.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.safetensors").st_mode) == 0o640


def test_a_read_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "frozen.safetensors"
    ta.save({"w": np.zeros(2)}, path)
    os.chmod(path, 0o444)
    before = path.read_bytes()
    with pytest.raises(PermissionError, match="frozen.safetensors is read-only"):
        ta.save({"w": np.ones(2)}, path)
    assert path.read_bytes() == before
    assert _entries(tmp_path) == ["frozen.safetensors"]


def test_a_symlink_is_written_through_to_its_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "ckpt.safetensors"
    ta.save({"w": np.zeros(2)}, target)
    os.chmod(target, 0o600)
    link = tmp_path / "latest.safetensors"
    link.symlink_to(target)
    ta.save({"w": np.ones(2)}, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(ta.load(target)["w"], np.ones(2))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    # a dangling link: its target is created, as open() would
    dangling = tmp_path / "next.safetensors"
    dangling.symlink_to(tmp_path / "real" / "next.safetensors")
    ta.save({"w": np.ones(1)}, dangling)
    assert (tmp_path / "real" / "next.safetensors").is_file() and dangling.is_symlink()


def test_errors_name_the_users_path_never_the_temporary_file(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "ckpt.safetensors"
    with pytest.raises(FileNotFoundError) as err:
        ta.save({"w": np.zeros(2)}, missing)
    assert str(missing) in str(err.value) and ".checkpoint-" not in str(err.value)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        ta.save({"w": np.zeros(2)}, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError) as err:
        ta.save({"w": np.zeros(2)}, tmp_path / "file" / "ckpt.safetensors")
    assert "file/ckpt.safetensors" in str(err.value) and ".checkpoint-" not in str(err.value)


# ---- the old file is intact after any failure ----
def _existing(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "model.safetensors"
    ta.save({"w": np.arange(4.0)}, path)
    return path, path.read_bytes()


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   KeyboardInterrupt()])
def test_a_full_disk_or_an_interrupt_mid_write_leaves_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    path, before = _existing(tmp_path)

    def half_then_fail(f: Any, data: bytes) -> None:
        f.write(data[: len(data) // 2])
        raise error

    monkeypatch.setattr(checkpoint, "_write_bytes", half_then_fail)
    with pytest.raises(type(error)) as raised:
        ta.save({"w": np.zeros(4)}, path)
    if isinstance(error, OSError):
        assert raised.value.errno == errno.ENOSPC
        assert str(path) in str(raised.value) and "unchanged" in str(raised.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _entries(tmp_path) == ["model.safetensors"]  # no temporary file left behind


def test_a_failed_first_save_creates_no_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def full(f: Any, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_bytes", full)
    with pytest.raises(OSError, match="new.safetensors"):
        ta.save({"w": np.zeros(4)}, tmp_path / "new.safetensors")
    assert _entries(tmp_path) == []


def test_a_failed_rename_leaves_the_old_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path, before = _existing(tmp_path)

    def fail(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, "rename failed (simulated)")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="simulated"):
        ta.save({"w": np.zeros(4)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _entries(tmp_path) == ["model.safetensors"]


def test_a_kill_between_write_and_rename_leaves_the_old_file(tmp_path: Path) -> None:
    """A real SIGKILL after the new file is complete and before it replaces the old one.
    Nothing can clean up after SIGKILL: the hidden temporary file stays; the checkpoint
    itself is the old one, whole."""
    path, before = _existing(tmp_path)
    script = textwrap.dedent(f"""
        import os, signal, numpy as np, tinygrad_attn as ta
        os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        ta.save({{"w": np.zeros(4)}}, {str(path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    np.testing.assert_array_equal(ta.load(path)["w"], np.arange(4.0))
    assert [n for n in _entries(tmp_path) if not n.startswith(".checkpoint-")] == \
        ["model.safetensors"]


def test_a_read_only_folder_refuses_and_keeps_the_old_file(tmp_path: Path) -> None:
    """Root ignores folder permissions, so as root the save runs in a forked child that
    has given up root (uid/gid 65534, "nobody"), in a folder under the system temporary
    directory (pytest's own is closed to other users); otherwise in this process."""
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="tinygrad-attn-")) if as_root else tmp_path
    folder = base / "locked"
    folder.mkdir()
    try:
        path = folder / "model.safetensors"
        ta.save({"w": np.arange(4.0)}, path)
        before = path.read_bytes()
        os.chmod(path, 0o666)  # the file itself is writable: only the folder says no
        os.chmod(folder, 0o555)
        if as_root:
            os.chmod(base, 0o755)
            closed = [p for p in base.parents if not os.stat(p).st_mode & stat.S_IXOTH]
            if closed:
                pytest.skip(f"{closed[0]} is closed to other users")
            message = _save_as_nobody({"w": np.zeros(4)}, path)
        else:
            with pytest.raises(PermissionError) as err:
                ta.save({"w": np.zeros(4)}, path)
            message = f"PermissionError: {err.value}"
        assert message.startswith("PermissionError: ")
        assert str(path) in message and ".checkpoint-" not in message
        assert path.read_bytes() == before
        assert _entries(folder) == ["model.safetensors"]
    finally:
        os.chmod(folder, 0o755)
        if as_root:
            shutil.rmtree(base)


def _save_as_nobody(state: dict[str, Any], path: Path) -> str:
    """Run ``ta.save`` in a forked child without root; return its error, type and text."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            ta.save(state, path)
            os.write(write, b"saved without an error")
        except BaseException as err:  # report everything, including the unexpected
            os.write(write, f"{type(err).__name__}: {err}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    return message


# ---- loading never executes code ----
def test_pickled_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, w=np.ones(3), payload=np.array([{"run": "me"}], dtype=object))
    with pytest.raises(ValueError, match=r"'payload' holds pickled Python objects") as err:
        ta.load(path)
    assert str(path) in str(err.value)


def test_a_pytorch_pickle_archive_is_refused(tmp_path: Path) -> None:
    """torch.save's format is a zip holding a pickle: refused by name, never unpickled.
    (The bytes imitate a pickle protocol-2 header; no pickle module is used.)"""
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("archive/version", b"3\n")
    with pytest.raises(ValueError, match="archive/data.pkl"):
        ta.load(path)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.")
    with pytest.raises(ValueError, match="raw.pkl"):
        ta.load(raw)


# ---- .npz: nothing allocated on a claim ----
def _npy(descr: str, shape: tuple[int, ...], data: bytes = b"", pad_to: int = 0) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape})
    header = header.ljust(max(pad_to, len(header) + 1)) + "\n"
    length = len(header)
    if length < 65536:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", length) + header.encode() + data
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", length) + header.encode() + data


def _zip(path: Path, members: dict[str, bytes], compress: bool = False) -> None:
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_a_member_claiming_petabytes_is_refused_before_allocation(tmp_path: Path) -> None:
    path = tmp_path / "huge.npz"
    _zip(path, {"w.npy": _npy("<f8", (2**49,))})  # 4 PiB claimed, nothing held
    with pytest.raises(ValueError, match=r"'w' declares shape \(562949953421312,\).*"
                                         r"4503599627370496 bytes.*holds 0 bytes"):
        ta.load(path)


def test_a_zip_bomb_is_refused_unless_trusted(tmp_path: Path) -> None:
    path = tmp_path / "bomb.npz"
    zeros = np.zeros(2**20, dtype=np.float64)  # 8 MiB of zeros: about 8 KiB deflated
    _zip(path, {"w.npy": _npy("<f8", zeros.shape, zeros.tobytes())}, compress=True)
    assert path.stat().st_size < 100_000
    with pytest.raises(ValueError, match=r"'w' expands from \d+ to \d+ bytes.*max_bytes"):
        ta.load(path)
    np.testing.assert_array_equal(ta.load(path, max_bytes=2**24)["w"], zeros)


def test_the_total_size_limit_names_the_member_and_sizes(tmp_path: Path) -> None:
    path = tmp_path / "big.npz"
    ta.save({"a": np.zeros(100), "b": np.zeros(1000)}, path)
    with pytest.raises(ValueError, match=r"member 'b' brings the arrays to \d+ bytes, over "
                                         r"the limit of 5000"):
        ta.load(path, max_bytes=5000)
    assert set(ta.load(path, max_bytes=10_000)) == {"a", "b"}
    with pytest.raises(ValueError, match="max_bytes"):
        ta.load(path, max_bytes=-1)


def test_a_huge_npy_header_is_refused_as_such(tmp_path: Path) -> None:
    path = tmp_path / "header.npz"
    _zip(path, {"w.npy": _npy("<f8", (1,), np.ones(1).tobytes(), pad_to=1_000_000)})
    with pytest.raises(ValueError, match=r"'w' has a 1000001-byte header, over the limit"):
        ta.load(path)


@pytest.mark.parametrize("member, message", [
    (_npy("<f8", (4,), np.ones(2).tobytes()), r"declares shape \(4,\).*holds 16 bytes"),
    (_npy("<f8", (1,), np.ones(3).tobytes()), r"declares shape \(1,\).*holds 24 bytes"),
    (_npy("|V8", (1,), bytes(8)), "dtype"),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': __import__('os')}", "unreadable .npy header"),
    (b"\x93NUMPY\x01\x00" + struct.pack("<H", 40) + b"{'descr': '<f8', 'shape': (1,)}",
     "truncated|unreadable"),
    (b"\x93NUMPY\x09\x00", "not a .npy array"),
    (b"\x93NUM", "not a .npy array"),
    (_npy("<f8", (-1,)), "invalid shape"),
])
def test_malformed_npy_members_raise_value_error(tmp_path: Path, member: bytes,
                                                 message: str) -> None:
    path = tmp_path / "bad.npz"
    _zip(path, {"w.npy": member})
    with pytest.raises(ValueError, match=message) as err:
        ta.load(path)
    assert str(path) in str(err.value)


def test_duplicate_and_non_array_members_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.npz"
    with pytest.warns(UserWarning, match="Duplicate name"):
        _zip(path, {"w.npy": _npy("<f8", (1,), bytes(8))})
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("w.npy", _npy("<f8", (1,), bytes(8)))
    with pytest.raises(ValueError, match="twice"):
        ta.load(path)
    path = tmp_path / "odd.npz"
    _zip(path, {"w.npy": _npy("<f8", (1,), bytes(8)), "notes.txt": b"hello"})
    with pytest.raises(ValueError, match="notes.txt"):
        ta.load(path)


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


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04junk",
                                     b"\x93NUMPY\x01\x00", b"\x00" * 7, b"\xff" * 64])
def test_junk_raises_value_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="junk.safetensors"):
        ta.load(path)


# ---- safetensors: sizes checked against the file ----
def _safetensors(header: dict[str, Any], data: bytes = b"",
                 header_len: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if header_len is None else header_len) + text + data


def _entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


@pytest.mark.parametrize("blob, message", [
    (_safetensors({}, header_len=2**62), r"header claims 4611686018427387904 bytes, but the "
                                         r"file has \d+ bytes"),
    (_safetensors({"w": _entry("F32", [2], 0, 8)}, b"\x00" * 4), r"'w' claims bytes "
                                                                 r"\[0, 8\].*4 bytes"),
    (_safetensors({"w": _entry("F32", [2**40], 0, 8)}, b"\x00" * 8),
     r"'w' of shape \(1099511627776,\) and dtype F32 needs 4398046511104 bytes.* holds 8"),
    (_safetensors({"w": _entry("F32", [1], 0, 4)}, b"\x00" * 12), "trailing junk"),
    (_safetensors({"a": _entry("F32", [2], 0, 8), "b": _entry("F32", [1], 4, 8)},
                  b"\x00" * 8), "overlapping"),
    (_safetensors({"w": _entry("BF16", [1], 0, 2)}, b"\x00" * 2), "BF16.*float32"),
    (_safetensors({"w": _entry("PY_OBJECT", [1], 0, 2)}, b"\x00" * 2), "unknown dtype"),
    (_safetensors({"w": _entry("F32", [-1], 0, 0)}), "invalid shape"),
    (_safetensors({"w": {"dtype": "F32"}}), "not described"),
    (_safetensors([1, 2]), "not a JSON object"),  # type: ignore[arg-type]
    (struct.pack("<Q", 4) + b"\xff\xfe{}", "not JSON"),
    (struct.pack("<Q", 13) + b'{"a":1,"a":2}', "appears twice"),
    (_safetensors({"__metadata__": {"k": 1}}), "strings to strings"),
])
def test_malformed_safetensors_raise_value_error(tmp_path: Path, blob: bytes,
                                                 message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=message) as err:
        ta.load(path)
    assert str(path) in str(err.value)


def _with_structure(structure: Any, tensors: dict[str, bytes] | None = None) -> bytes:
    header: dict[str, Any] = {"__metadata__": {checkpoint.META_KEY: json.dumps(structure)}}
    data = b""
    for name, raw in (tensors or {}).items():
        header[name] = _entry("U8", [len(raw)], len(data), len(data) + len(raw))
        data += raw
    return _safetensors(header, data)


@pytest.mark.parametrize("blob, message", [
    (_with_structure({"dict": [["w", {"tensor": "missing"}]]}), "'missing'"),
    (_with_structure({"dict": [["a", {"tensor": "t"}], ["b", {"tensor": "t"}]]},
                     {"t": b"\x01"}), "placed twice"),
    (_with_structure({"dict": []}, {"t": b"\x01"}), r"does not place: \['t'\]"),
    (_with_structure({"dict": [["a", 1], ["a", 2]]}), "repeated dict key"),
    (_with_structure({"dict": [[True, 1]]}), "bad or repeated dict key"),
    (_with_structure({"list": []}), "does not describe a dict"),
    (_with_structure({"eval": "__import__('os')"}), "unreadable structure"),
    (_with_structure(json.loads("[" * 10 + "]" * 10)), "unreadable structure"),
])
def test_a_lying_structure_raises_value_error(tmp_path: Path, blob: bytes,
                                              message: str) -> None:
    path = tmp_path / "lie.safetensors"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=message):
        ta.load(path)


def test_deep_nesting_is_refused_both_ways(tmp_path: Path) -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(checkpoint.MAX_DEPTH + 5):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ValueError, match="nested more than"):
        ta.save(deep, tmp_path / "deep.safetensors")
    structure = {"dict": []}
    for _ in range(checkpoint.MAX_DEPTH + 5):
        structure = {"dict": [["x", structure]]}
    path = tmp_path / "deep.safetensors"
    path.write_bytes(_with_structure(structure))
    with pytest.raises(ValueError, match="nested more than"):
        ta.load(path)
    path.write_bytes(struct.pack("<Q", 200_000) + b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ValueError, match="not JSON"):
        ta.load(path)


def test_loading_reads_no_more_than_the_file_holds(tmp_path: Path) -> None:
    """A safetensors header may not claim more than the file: the 8-byte length is checked
    against the file size before the header is even read."""
    path = tmp_path / "short.safetensors"
    ta.save({"w": np.ones(1000)}, path)
    data = path.read_bytes()
    for cut in (4, 9, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="short.safetensors"):
            ta.load(path)
    path.write_bytes(data + b"junk")
    with pytest.raises(ValueError, match="trailing junk"):
        ta.load(path)
    buffer = io.BytesIO(data)
    assert buffer.read(8) == data[:8]  # (the file itself was fine before the cuts)
