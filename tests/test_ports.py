"""PyTorch programs, written as the well-known tutorials write them, run here with only
their imports changed, and give PyTorch's numbers.

Each file in ``tests/ports/`` is PyTorch code. ``scripts/make_fixtures.py`` runs it as it
is and stores what it reports in ``tests/fixtures/port_<name>.npz``; this test swaps its
three import lines for this library's and runs the same text from the same initial state
dict. Losses, outputs and final weights must agree to float32 round-off.
"""

from __future__ import annotations

import os
import types

import numpy as np
import pytest

HERE = os.path.dirname(__file__)
IMPORTS = {  # PyTorch's line -> ours: the only change made to a port's text
    "import torch\n": "import tinygrad_attn as torch\n",
    "import torch.nn.functional as F\n": "import tinygrad_attn.nn.functional as F\n",
    "from torch import nn, optim\n": "from tinygrad_attn import nn, optim\n",
}
PORTS = ["gpt", "annotated", "first_lesson"]
# The key projection's bias adds the same number to every score of a query, which softmax
# ignores: its true gradient is 0, both libraries compute round-off (~1e-9), and Adam
# scales that up to a step of size lr in a random direction. Its final value is noise.
NOISE_ONLY = ("self_attn.linears.1.bias",)


def load_port(name: str) -> types.ModuleType:
    """The port's source with its PyTorch imports swapped for ours, as a module."""
    path = os.path.join(HERE, "ports", f"{name}.py")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    for theirs, ours in IMPORTS.items():
        assert source.count(theirs) == 1, f"{name}: expected the line {theirs!r} once"
        source = source.replace(theirs, ours)
    assert "import torch" not in source and "from torch" not in source, name
    module = types.ModuleType(f"port_{name}")
    module.__file__ = path
    exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 (our own test code)
    return module


def fixture(name: str) -> dict[str, np.ndarray]:
    with np.load(os.path.join(HERE, "fixtures", f"port_{name}.npz")) as archive:
        return {k: archive[k] for k in archive.files}


def group(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) + 1:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


@pytest.mark.parametrize("name", PORTS)
def test_port_matches_pytorch(name: str) -> None:
    expected = fixture(name)
    initial = group(expected, "initial")
    result = load_port(name).run(initial)
    # The model started from PyTorch's weights, under PyTorch's names and shapes.
    assert list(result["initial"]) == list(initial)
    for key, value in result["initial"].items():
        np.testing.assert_array_equal(value, initial[key], err_msg=key)
    final = group(expected, "final")
    assert list(result["final"]) == list(final)
    for key, value in result["final"].items():
        if key.endswith(NOISE_ONLY):
            continue
        assert value.dtype == final[key].dtype, key
        np.testing.assert_allclose(value, final[key], rtol=1e-4, atol=2e-5, err_msg=key)
    for key, value in result.items():
        if key in ("initial", "final"):
            continue
        reference = expected[key]
        if reference.dtype.kind in "iub":
            np.testing.assert_array_equal(value, reference, err_msg=key)
        else:
            np.testing.assert_allclose(value, reference, rtol=1e-4, atol=2e-5, err_msg=key)
