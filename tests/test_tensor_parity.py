"""The tensor API against PyTorch: every expression of ``tensor_api_cases.py``, written
as PyTorch code, gives PyTorch's values, dtype and gradient here (fixtures made by
``scripts/make_fixtures.py`` with PyTorch 2.13)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import tinygrad_attn

sys.path.insert(0, os.path.dirname(__file__))
from tensor_api_cases import CASES, inputs, weight  # noqa: E402

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "tensor_api.npz"))


@pytest.mark.parametrize("i", range(len(CASES)), ids=CASES)
def test_expression_matches_pytorch(i: int) -> None:
    env = inputs(tinygrad_attn)
    value = eval(CASES[i], env)  # noqa: S307 (the expressions are ours)
    expected = FIXTURE[f"{i}/value"]
    assert value.shape == expected.shape
    assert str(value.dtype) == str(FIXTURE[f"{i}/dtype"])
    np.testing.assert_allclose(value.numpy().astype(expected.dtype), expected, rtol=2e-6,
                               atol=1e-6)
    if f"{i}/grad" in FIXTURE:
        assert value.requires_grad, "PyTorch's result requires grad"
        (value * weight(value.shape).astype(value.dtype)).sum().backward()
        np.testing.assert_allclose(env["x"].grad, FIXTURE[f"{i}/grad"], rtol=1e-5,
                                   atol=1e-6)
    else:
        assert not value.requires_grad


def test_every_case_has_a_fixture() -> None:
    assert all(f"{i}/value" in FIXTURE for i in range(len(CASES)))
