"""Optimizers: parameter trajectories against PyTorch's (committed fixtures), dtypes and
argument checks.

``tests/fixtures/optim.npz`` was written by ``scripts/make_fixtures.py`` with
torch.optim (foreach=False) in float64 on the loss mean((X W^T + b - Y)^2).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest

from tinygrad_attn import Tensor, nn, ops, optim

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "optim.npz")
RTOL, ATOL = 1e-10, 1e-12
CASES = ["sgd", "sgd_momentum", "sgd_dampening", "sgd_weight_decay",
         "sgd_momentum_weight_decay", "sgd_nesterov", "adam", "adam_betas_eps",
         "adam_weight_decay", "adamw", "adamw_default_decay"]


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _loss(X: np.ndarray, Y: np.ndarray, W: Tensor, b: Tensor) -> Tensor:
    diff = ops.linear(Tensor(X), W, b) - Tensor(Y)
    return (diff * diff).mean()


def _optimizer(config: dict[str, Any], params: list[Tensor]) -> optim.Optimizer:
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config["kwargs"].items()}
    return getattr(optim, config["class"])(params, **kwargs)


def test_fixture_holds_every_case(fixture: dict[str, np.ndarray]) -> None:
    assert {k.split("/")[0] for k in fixture} == set(CASES) | {"problem"}


@pytest.mark.parametrize("case", CASES)
def test_trajectory_matches_torch(fixture: dict[str, np.ndarray], case: str) -> None:
    """Our autograd computes each step's gradient, our optimizer takes the step; both the
    gradients and the parameters after every step must equal PyTorch's."""
    config = json.loads(str(fixture[f"{case}/config"]))
    X, Y = fixture["problem/X"], fixture["problem/Y"]
    W = nn.Parameter(fixture["problem/W0"].copy())
    b = nn.Parameter(fixture["problem/b0"].copy())
    opt = _optimizer(config, [W, b])
    ref_W, ref_b = fixture[f"{case}/W"], fixture[f"{case}/b"]
    assert ref_W.shape[0] == config["steps"] + 1
    for step in range(config["steps"]):
        opt.zero_grad()
        _loss(X, Y, W, b).backward()
        if config["skip_bias_at"] == step:
            b.grad = None  # a parameter without a gradient is left alone, state and all
        np.testing.assert_allclose(W.grad, fixture[f"{case}/grad_W"][step], rtol=RTOL,
                                   atol=ATOL, err_msg=f"{case}: grad W at step {step}")
        opt.step()
        np.testing.assert_allclose(W.data, ref_W[step + 1], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{case}: W after step {step + 1}")
        np.testing.assert_allclose(b.data, ref_b[step + 1], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{case}: b after step {step + 1}")
    assert not np.allclose(ref_W[-1], ref_W[0])  # the reference really moved


@pytest.mark.parametrize("case", CASES)
def test_recorded_gradients_reproduce_the_trajectory(fixture: dict[str, np.ndarray],
                                                     case: str) -> None:
    """The update rules alone: feed PyTorch's own gradients, step by step."""
    config = json.loads(str(fixture[f"{case}/config"]))
    W = nn.Parameter(fixture["problem/W0"].copy())
    b = nn.Parameter(fixture["problem/b0"].copy())
    opt = _optimizer(config, [W, b])
    for step in range(config["steps"]):
        W.grad = fixture[f"{case}/grad_W"][step].copy()
        grad_b = fixture[f"{case}/grad_b"][step]
        b.grad = None if np.isnan(grad_b).all() else grad_b.copy()
        opt.step()
    np.testing.assert_allclose(W.data, fixture[f"{case}/W"][-1], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b.data, fixture[f"{case}/b"][-1], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", CASES)
def test_float32_parameters_stay_float32(fixture: dict[str, np.ndarray], case: str) -> None:
    config = json.loads(str(fixture[f"{case}/config"]))
    X, Y = (fixture[k].astype(np.float32) for k in ("problem/X", "problem/Y"))
    W = nn.Parameter(fixture["problem/W0"].astype(np.float32))
    b = nn.Parameter(fixture["problem/b0"].astype(np.float32))
    W_data = W.data
    opt = _optimizer(config, [W, b])
    for _ in range(3):
        opt.zero_grad()
        _loss(X, Y, W, b).backward()
        assert W.grad.dtype == np.float32
        opt.step()
        assert W.dtype == np.float32 and b.dtype == np.float32
    assert W.data is W_data  # updated in place
    for state in opt.state.values():
        for name, value in state.items():
            if name != "step":
                assert value.dtype == np.float32, name
    # float32 work follows the float64 reference to float32 accuracy
    np.testing.assert_allclose(W.data, fixture[f"{case}/W"][3], rtol=1e-4, atol=1e-5)


def test_zero_grad_clears_gradients() -> None:
    W = nn.Parameter(np.ones((2, 2)))
    opt = optim.Adam([W])
    (W * W).sum().backward()
    assert W.grad is not None
    opt.zero_grad()
    assert W.grad is None
    opt.step()  # no gradient: nothing moves, no state
    np.testing.assert_array_equal(W.data, np.ones((2, 2)))
    assert opt.state == {}


def test_bad_gradient_stops_the_step_before_any_parameter_moves() -> None:
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    opt = optim.SGD([a, b], lr=0.1)
    a.grad, b.grad = np.ones(3), np.ones(5)
    with pytest.raises(ValueError, match=r"\(5,\)"):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones(3))


def test_bad_arguments_raise() -> None:
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD([p], lr=-1.0)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta parameter at index 0"):
        optim.Adam([p], betas=(1.0, 0.999))
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.Adam([np.ones(2)])


def test_adamw_default_weight_decay_is_torch_default() -> None:
    p = nn.Parameter(np.ones(1))
    assert optim.AdamW([p]).defaults["weight_decay"] == 0.01
    assert optim.Adam([p]).defaults == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                                        "weight_decay": 0, "amsgrad": False}
