"""Checkpoints as ``.npz``: written atomically, read without pickle."""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from tinygrad_attn.tensor import Tensor


def save(state_dict: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``state_dict`` (name -> array or Tensor) to ``path`` as ``.npz``.

    The file is written beside its destination and renamed over it only once complete,
    so a crash mid-write leaves any previous checkpoint intact.
    """
    arrays = {}
    for name, value in state_dict.items():
        array = value.data if isinstance(value, Tensor) else np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"save: {name!r} holds {array.dtype} values; checkpoints hold "
                            f"numeric arrays only")
        arrays[name] = array
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # never hide the error that got us here
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a checkpoint written by :func:`save`. Never unpickles: a file holding Python
    objects is refused with a ValueError."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if not is_zip:
        raise ValueError(f"load: {path} is not an .npz checkpoint (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise ValueError(f"load: {path} holds pickled Python objects; checkpoints "
                             f"hold plain arrays only, and pickles are never loaded") from None
        raise ValueError(f"load: {path} is not a valid checkpoint ({err})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise ValueError(f"load: {path} is not a valid .npz checkpoint ({err})") from None
    # np.load hands back the raw bytes of a zip member that is not a .npy file.
    stray = [name for name, value in arrays.items() if not isinstance(value, np.ndarray)]
    if stray:
        raise ValueError(f"load: {path} holds members that are not .npy arrays: {stray}")
    return arrays
