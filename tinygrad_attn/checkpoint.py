"""Checkpoints: ``save`` writes safetensors (or ``.npz`` for a path ending in ``.npz``),
atomically; ``load`` reads either, never executing code and never allocating more than the
file really holds (or, for ``.npz``, more than a stated limit).

safetensors layout written by :func:`save`: every array is a tensor named by its path in
the nested dict, the keys joined by ``/`` (``"model/encoder.layers.0.linear1.weight"``,
``"optim/state/0/exp_avg"``); a top-level flat state dict keeps exactly its own keys, so
``safetensors.torch.load_file`` + ``load_state_dict(strict=True)`` take it in PyTorch. The
file's metadata entry ``"tinygrad_attn"`` holds the nesting as JSON (dict keys with their
types, lists, tuples, and the plain numbers, strings, bools and None between the arrays),
so :func:`load` gives back exactly the object that was saved, with arrays as NumPy arrays.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import io
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as _safetensors_bytes

from tinygrad_attn.tensor import Tensor

META_KEY = "tinygrad_attn"  # safetensors metadata entry holding the nesting (JSON)
SEPARATOR = "/"  # joins nested keys into tensor names; PyTorch's names use "." only
DEFAULT_MAX_BYTES = 1 << 30  # what an .npz may expand to unless load(max_bytes=) says more
MAX_EXPANSION = 100  # a compressed .npz member expanding more than this looks like a bomb
_EXPANSION_FLOOR = 1 << 20  # ... unless it is small anyway
MAX_NPY_HEADER = 10_000  # bytes; NumPy's own limit for a trusted .npy header
MAX_SAFETENSORS_HEADER = 100_000_000  # bytes; the safetensors library's own limit
MAX_DEPTH = 64  # nesting levels in a checkpoint's structure

# safetensors dtype names <-> NumPy dtypes (those both sides can hold).
_DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16,
           "I16": np.int16, "U32": np.uint32, "I32": np.int32, "U64": np.uint64,
           "I64": np.int64, "F16": np.float16, "F32": np.float32, "F64": np.float64}
_SUPPORTED = {np.dtype(t) for t in _DTYPES.values()}


# ---- saving ----
def save(obj: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``obj`` to exactly ``path``.

    ``obj`` is a dict, possibly nested, whose leaves are arrays or Tensors and the plain
    values an optimizer or scheduler state holds (int, float, bool, str, None, and lists or
    tuples of them), e.g. ``{"model": model.state_dict(), "optim": opt.state_dict()}``.
    Dict keys are str or int. A path ending in ``.npz`` gets a NumPy ``.npz`` archive (a flat
    dict of arrays only); any other path gets safetensors (see the module docstring).

    The file is written beside its destination and renamed over it only once complete, so
    after any failure (full disk, a crash, a kill) the previous file is intact (a kill
    between writing and renaming can leave a hidden ``.checkpoint-*.tmp`` file beside it,
    which nothing can clean up after SIGKILL; it is safe to delete). Replacing a
    file keeps its permission bits; a read-only file is refused. A symlink is written
    through: its target gets the new contents and the link stays. Errors name ``path``.

    Raises TypeError for an object or a value that cannot be stored (naming its key), and
    OSError (PermissionError, IsADirectoryError, ...) when ``path`` cannot be written.
    """
    if not isinstance(obj, Mapping):
        if hasattr(obj, "state_dict"):
            raise TypeError(f"save: got a {type(obj).__name__}, not a dict; save its state: "
                            f"ta.save(obj.state_dict(), path)")
        raise TypeError(f"save: expected a dict of arrays, got {type(obj).__name__}")
    user_path = os.fspath(path)
    if os.fsdecode(user_path).endswith(".npz"):
        blob = _npz_bytes(obj)
    else:
        tensors: dict[str, np.ndarray] = {}
        structure = _encode(obj, [], tensors, 0)
        blob = _safetensors_bytes(tensors, metadata={META_KEY: json.dumps(structure)})
    _write_atomically(user_path, blob)


def _as_array(value: Any, where: str) -> np.ndarray | None:
    """The array a leaf holds (None if it is not an array), checked storable."""
    if isinstance(value, Tensor):
        value = value.data
    elif not isinstance(value, (np.ndarray, np.generic)):
        return None
    array = np.asarray(value)
    if array.dtype.newbyteorder("=") not in _SUPPORTED:
        raise TypeError(f"save: {where} holds {array.dtype} values; checkpoints hold bool, "
                        f"integer and float arrays only")
    # safetensors reads the raw buffer: it must be contiguous and little-endian.
    # (np.ascontiguousarray would turn a 0-d array into a 1-d one.)
    return np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")


def _encode(value: Any, keys: list[Any], tensors: dict[str, np.ndarray], depth: int) -> Any:
    """The JSON node describing ``value``; its arrays go into ``tensors``."""
    where = _where(keys)
    if depth > MAX_DEPTH:
        raise ValueError(f"save: {where} is nested more than {MAX_DEPTH} levels deep")
    array = _as_array(value, where)
    if array is not None:
        name = SEPARATOR.join(_escape(str(k)) for k in keys)
        unique, n = name, 1
        # e.g. the keys 0 and "0" side by side; "__metadata__" is safetensors' own entry
        while unique in tensors or unique == "__metadata__":
            unique, n = f"{name}%{n}", n + 1  # "%" alone never comes out of _escape
        tensors[unique] = array
        return {"tensor": unique}
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"save: {where} has the key {key!r}; keys must be str or int")
            items.append([key, _encode(item, keys + [key], tensors, depth + 1)])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(v, keys + [i], tensors, depth + 1) for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"save: {where} holds a {type(value).__name__}; checkpoints hold arrays, "
                    f"numbers, strings, None and dicts/lists/tuples of them")


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace(SEPARATOR, "%2F")


def _where(keys: list[Any]) -> str:
    return "".join(f"[{k!r}]" for k in keys) or "the object"


def _npz_bytes(obj: Mapping[str, Any]) -> bytes:
    """A flat dict of arrays as an uncompressed ``.npz`` (what ``np.savez`` writes), built
    member by member so that every key, whatever its name, becomes a member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as archive:
        for key, value in obj.items():
            array = _as_array(value, f"[{key!r}]")
            if not isinstance(key, str) or array is None:
                raise TypeError(f"save: an .npz file holds a flat dict of str -> array, but "
                                f"[{key!r}] is a {type(value).__name__}; save to a "
                                f".safetensors path to keep nested dicts and numbers")
            with archive.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def _write_bytes(f: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` (one place, so tests can make the disk run full here)."""
    f.write(data)


def _write_atomically(user_path: str, data: bytes) -> None:
    # A symlink is written through: the new file replaces the link's target.
    target = os.path.realpath(user_path)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, f"save: {user_path} is a folder; give the "
                                f"path of a file to write")
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as err:
        raise _naming(err, user_path) from None
    if existing is not None:
        # Refuse to replace a read-only file: renaming over it would succeed (the folder
        # decides that), and root may write anything, so look at its mode too.
        if not existing.st_mode & 0o222 or not os.access(target, os.W_OK):
            raise PermissionError(errno.EACCES, f"save: {user_path} is read-only; not "
                                  f"replacing it (make it writable, or save elsewhere)")
        mode = stat.S_IMODE(existing.st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask  # what a plain open() would create
    try:
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp",
                                   dir=os.path.dirname(target))
    except OSError as err:
        raise _naming(err, user_path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            # The temporary file gets the final mode before any byte is in it, so the data
            # is never readable by more people than the finished file allows.
            os.fchmod(f.fileno(), mode)
            if existing is not None:
                with contextlib.suppress(OSError):  # only root may give files away
                    os.fchown(f.fileno(), existing.st_uid, existing.st_gid)
            _write_bytes(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):  # never hide the error that got us here
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _naming(err, user_path) from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where we can
        folder = os.open(os.path.dirname(target), os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _naming(err: OSError, user_path: str) -> OSError:
    """The same kind of error, naming the user's path rather than a temporary file."""
    reason = err.strerror or str(err)
    message = f"save: could not write {user_path}: {reason} (any previous file is unchanged)"
    return type(err)(err.errno, message) if err.errno is not None else type(err)(message)


# ---- loading ----
def load(path: str | os.PathLike, *, max_bytes: int | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`, by PyTorch's ``safetensors`` (any
    ``.safetensors`` file), or by ``np.savez``; the format is told by the file's content.

    Returns the saved dict with arrays as NumPy arrays (a safetensors file written
    elsewhere gives a flat dict of its tensors). Never executes code: no pickle, no object
    arrays. Sizes a file declares are checked before anything is allocated: against the
    file's size (safetensors), or against ``max_bytes`` for an ``.npz``, whose compressed
    members may expand (default 1 GiB in all; by default a member expanding more than
    100 times, beyond 1 MiB, is refused as a likely zip bomb; passing ``max_bytes`` sets
    the limit and trusts the compression). Anything malformed (truncation, junk, bad
    offsets, pickles) raises ValueError naming the path, the key and the sizes involved.
    """
    user_path = os.fspath(path)
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(
            max_bytes, int) or max_bytes < 0):
        raise ValueError(f"load: max_bytes must be a non-negative int, got {max_bytes!r}")
    with open(user_path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        start = f.read(8)
        if start[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip: an .npz
            return _load_npz(user_path, f, max_bytes)
        return _load_safetensors(user_path, f, start, size)


def _load_safetensors(path: str, f: BinaryIO, start: bytes, size: int) -> dict[str, Any]:
    if start.startswith(b"\x93NUMPY"):
        raise ValueError(f"load: {path} is a single .npy array, not a checkpoint (a "
                         f".safetensors or .npz file); read it with np.load")
    if len(start) < 8:
        raise ValueError(f"load: {path} is not a checkpoint: {size} bytes is too short for "
                         f"a safetensors header, and it is not an .npz (zip) archive")
    (header_len,) = struct.unpack("<Q", start)
    if header_len > min(size - 8, MAX_SAFETENSORS_HEADER):
        raise ValueError(f"load: {path} is not a valid checkpoint: its header claims "
                         f"{header_len} bytes, but the file has {size} bytes (and headers "
                         f"may have {MAX_SAFETENSORS_HEADER} at most); it is truncated, or not "
                         f"a safetensors or .npz file")
    try:
        header = json.loads(f.read(header_len).decode("utf-8"),
                            object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"load: {path} is not a valid checkpoint: its header is not JSON "
                         f"({err})") from None
    if not isinstance(header, dict):
        raise ValueError(f"load: {path} is not a valid checkpoint: its header is not a JSON "
                         f"object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in
                                                 metadata.values()):
        raise ValueError(f"load: {path}: '__metadata__' must map strings to strings")
    _check_entries(path, header, size - 8 - header_len)
    arrays: dict[str, np.ndarray] = {}
    try:
        with safe_open(path, framework="np") as reader:
            if set(reader.keys()) != set(header):
                raise ValueError(f"load: {path} changed while being read")
            for name in sorted(header, key=lambda n: header[n]["data_offsets"]):
                array = reader.get_tensor(name)
                arrays[name] = array if array.flags.writeable else array.copy()
    except SafetensorError as err:
        raise ValueError(f"load: {path} is not a valid safetensors file ({err})") from None
    if META_KEY not in metadata:
        return arrays  # written elsewhere (e.g. by PyTorch): a flat dict of its tensors
    try:
        structure = json.loads(metadata[META_KEY])
    except (ValueError, RecursionError) as err:
        raise ValueError(f"load: {path}: its {META_KEY!r} metadata is not JSON "
                         f"({err})") from None
    used: set[str] = set()
    obj = _decode(path, structure, arrays, used, 0)
    if not isinstance(obj, dict):
        raise ValueError(f"load: {path}: its {META_KEY!r} metadata does not describe a dict")
    unused = sorted(set(arrays) - used)
    if unused:
        raise ValueError(f"load: {path} holds tensors its structure does not place: "
                         f"{unused[:5]}")
    return obj


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"the key {twice!r} appears twice")
    return result


def _check_entries(path: str, header: dict[str, Any], data_size: int) -> None:
    """Every tensor's dtype, shape and byte range, checked against the file's real size
    before a byte of data is read: the ranges must tile the data exactly."""
    ranges = []
    for name, entry in header.items():
        where = f"load: {path}: tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{where} is not described by dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _DTYPES:
            raise ValueError(f"{where} has dtype {dtype!r}, which NumPy cannot hold (convert "
                             f"it to float32 in PyTorch first)" if dtype in (
                                 "BF16", "F8_E4M3", "F8_E5M2") else
                             f"{where} has an unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise ValueError(f"{where} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                isinstance(n, int) and not isinstance(n, bool) for n in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_size):
            raise ValueError(f"{where} claims bytes {offsets!r}, but the data section has "
                             f"{data_size} bytes (truncated or corrupt)")
        needed = math.prod(shape) * np.dtype(_DTYPES[dtype]).itemsize  # Python ints
        if offsets[1] - offsets[0] != needed:
            raise ValueError(f"{where} of shape {tuple(shape)} and dtype {dtype} needs "
                             f"{needed} bytes, but its range holds {offsets[1] - offsets[0]}")
        if needed:
            ranges.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(ranges):
        if begin != end:
            raise ValueError(f"load: {path}: tensor {name!r} starts at byte {begin}, expected "
                             f"{end} (overlapping or gapped data)")
        end = stop
    if end != data_size:
        raise ValueError(f"load: {path}: the tensors cover {end} bytes of a {data_size}-byte "
                         f"data section (trailing junk or missing tensors)")


def _decode(path: str, node: Any, arrays: dict[str, np.ndarray], used: set[str],
            depth: int) -> Any:
    """Rebuild what :func:`_encode` described, checking every node."""
    if depth > MAX_DEPTH:
        raise ValueError(f"load: {path}: its structure is nested more than {MAX_DEPTH} deep")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"load: {path}: unreadable structure node {str(node)[:80]}")
    ((kind, body),) = node.items()
    if kind == "tensor":
        if not isinstance(body, str) or body not in arrays or body in used:
            raise ValueError(f"load: {path}: the structure names tensor {body!r}, which is "
                             f"missing or placed twice")
        used.add(body)
        return arrays[body]
    if kind in ("list", "tuple") and isinstance(body, list):
        items = [_decode(path, item, arrays, used, depth + 1) for item in body]
        return items if kind == "list" else tuple(items)
    if kind == "dict" and isinstance(body, list):
        result: dict[Any, Any] = {}
        for pair in body:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))
                    and not isinstance(pair[0], bool)) or pair[0] in result:
                raise ValueError(f"load: {path}: bad or repeated dict key in its structure: "
                                 f"{str(pair)[:80]}")
            result[pair[0]] = _decode(path, pair[1], arrays, used, depth + 1)
        return result
    raise ValueError(f"load: {path}: unreadable structure node {str(node)[:80]}")


def _load_npz(path: str, f: BinaryIO, max_bytes: int | None) -> dict[str, np.ndarray]:
    limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    f.seek(0)
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"load: {path} is not a valid .npz checkpoint ({err})") from None
    with archive:
        members = archive.infolist()
        names = [m.filename for m in members]
        stray = [n for n in names if not n.endswith(".npy")]
        if stray:
            raise ValueError(f"load: {path} holds members that are not .npy arrays: "
                             f"{stray[:5]}")
        if len(set(names)) != len(names):
            raise ValueError(f"load: {path} holds a member name twice")
        total = 0
        for m in members:
            key = m.filename[:-4]
            total += m.file_size
            if total > limit:
                raise ValueError(f"load: {path}: member {key!r} brings the arrays to {total} "
                                 f"bytes, over the limit of {limit}; if you trust the file, "
                                 f"pass load(path, max_bytes=...)")
            if (max_bytes is None and m.compress_type != zipfile.ZIP_STORED
                    and m.file_size > _EXPANSION_FLOOR
                    and m.file_size > MAX_EXPANSION * max(m.compress_size, 1)):
                raise ValueError(f"load: {path}: member {key!r} expands from "
                                 f"{m.compress_size} to {m.file_size} bytes, more than "
                                 f"{MAX_EXPANSION} times (a zip bomb?); if you trust the "
                                 f"file, pass load(path, max_bytes=...)")
        arrays = {}
        for m in members:
            key = m.filename[:-4]
            try:
                with archive.open(m) as member:
                    arrays[key] = _read_npy(path, key, member, m.file_size)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError,
                    NotImplementedError, RuntimeError) as err:
                raise ValueError(f"load: {path}: member {key!r} is corrupt ({err})") from None
    return arrays


def _read_npy(path: str, key: str, member: BinaryIO, member_size: int) -> np.ndarray:
    """One ``.npy`` member, its header parsed here (never unpickling, bounded), its data
    read into an array only after the declared size matches the member's."""
    where = f"load: {path}: member {key!r}"
    magic = member.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise ValueError(f"{where} is not a .npy array")
    length_size = 2 if magic[6] == 1 else 4
    raw_length = member.read(length_size)
    if len(raw_length) != length_size:
        raise ValueError(f"{where} is truncated inside its header")
    (header_len,) = struct.unpack("<H" if length_size == 2 else "<I", raw_length)
    if header_len > MAX_NPY_HEADER:
        raise ValueError(f"{where} has a {header_len}-byte header, over the limit of "
                         f"{MAX_NPY_HEADER} bytes for a .npy header")
    text = member.read(header_len)
    try:
        header = ast.literal_eval(text.decode("utf-8" if magic[6] == 3 else "latin1"))
        if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
            raise ValueError("not a dict of descr, fortran_order and shape")
        dtype = np.lib.format.descr_to_dtype(header["descr"])
        shape = header["shape"]
        if not isinstance(shape, tuple) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise ValueError(f"invalid shape {shape!r}")
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
        raise ValueError(f"{where} has an unreadable .npy header ({err})") from None
    if dtype.hasobject:
        raise ValueError(f"{where} holds pickled Python objects (dtype {dtype}); checkpoints "
                         f"hold plain arrays only, and pickles are never loaded")
    if dtype.kind not in "biufcSU" or dtype.fields is not None:
        raise ValueError(f"{where} has dtype {dtype}, which checkpoints do not hold")
    needed = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    held = member_size - 8 - length_size - header_len
    if needed != held:
        raise ValueError(f"{where} declares shape {shape} of {dtype} ({needed} bytes), but "
                         f"holds {held} bytes of data (truncated or corrupt)")
    array = np.empty(shape[::-1] if header["fortran_order"] else shape, dtype=dtype)
    view = memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")
    filled = 0
    while filled < needed:
        n = member.readinto(view[filled:])
        if not n:
            raise ValueError(f"{where} ends after {filled} of {needed} data bytes (truncated)")
        filled += n
    if member.read(1):  # also makes zipfile check the member's CRC
        raise ValueError(f"{where} holds more data than its header declares")
    return array.T if header["fortran_order"] else array
