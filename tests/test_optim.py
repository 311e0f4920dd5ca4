"""Optimizers and schedulers: trajectories, learning rates and state dicts against PyTorch's
(committed fixtures), dtypes, versions, parameter groups and argument checks.

``tests/fixtures/optim.npz`` was written by ``scripts/make_fixtures.py`` with
torch.optim (foreach=False) in float64 on the loss mean((X W^T + b - Y)^2); its docstring
of ``optim_cases`` describes the keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tinygrad_attn import Tensor, nn, ops, optim
from tinygrad_attn.optim import lr_scheduler

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "optim.npz")
RTOL, ATOL = 1e-10, 1e-12
CASES = ["sgd", "sgd_momentum", "sgd_dampening", "sgd_positional", "sgd_weight_decay",
         "sgd_momentum_weight_decay", "sgd_nesterov", "sgd_groups", "sgd_step_lr", "adam",
         "adam_positional", "adam_betas_eps", "adam_weight_decay", "adam_amsgrad",
         "adam_groups", "adam_cosine", "adamw", "adamw_default_decay", "adamw_amsgrad",
         "adamw_linear_lr"]
SCHEDULES = ["step_lr", "step_lr_gamma", "lambda_lr", "lambda_lr_per_group", "linear_lr",
             "linear_lr_down", "cosine", "cosine_eta_min"]
# The same formulas as LR_LAMBDAS in scripts/make_fixtures.py.
LR_LAMBDAS: dict[str, Callable[[int], float]] = {
    "warmup": lambda epoch: min(1.0, (epoch + 1) / 4),
    "decay": lambda epoch: 0.8**epoch,
}


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def _config(fixture: dict[str, np.ndarray], case: str) -> dict[str, Any]:
    return json.loads(str(fixture[f"{case}/config"]))


def _loss(X: np.ndarray, Y: np.ndarray, W: Tensor, b: Tensor) -> Tensor:
    diff = ops.linear(Tensor(X), W, b) - Tensor(Y)
    return (diff * diff).mean()


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if k == "betas" else v for k, v in d.items()}


def _optimizer(config: dict[str, Any], W: Tensor, b: Tensor) -> optim.Optimizer:
    """Build the case's optimizer exactly as the fixture script called PyTorch's."""
    tensors = {"W": W, "b": b}
    params: Any = [W, b] if config["groups"] is None else [
        {**_tuples(g), "params": [tensors[n] for n in g["params"]]} for g in config["groups"]]
    args = [tuple(a) if isinstance(a, list) else a for a in config["args"]]
    return getattr(optim, config["class"])(params, *args, **_tuples(config["kwargs"]))


def _scheduler(opt: optim.Optimizer, spec: dict[str, Any]) -> lr_scheduler.LRScheduler:
    kwargs = dict(spec["kwargs"])
    if spec["class"] == "LambdaLR":
        names = kwargs["lr_lambda"]
        kwargs["lr_lambda"] = ([LR_LAMBDAS[n] for n in names] if isinstance(names, list)
                               else LR_LAMBDAS[names])
    return getattr(lr_scheduler, spec["class"])(opt, **kwargs)


def _params(fixture: dict[str, np.ndarray], dtype: Any = np.float64) -> tuple[Tensor, Tensor]:
    return (nn.Parameter(fixture["problem/W0"].astype(dtype)),
            nn.Parameter(fixture["problem/b0"].astype(dtype)))


def _feed(fixture: dict[str, np.ndarray], case: str, W: Tensor, b: Tensor, step: int) -> None:
    """Give W and b PyTorch's gradients of ``step`` (b none where PyTorch had none)."""
    W.grad = fixture[f"{case}/grad_W"][step].astype(W.dtype)
    grad_b = fixture[f"{case}/grad_b"][step]
    b.grad = None if np.isnan(grad_b).all() else grad_b.astype(b.dtype)


def test_fixture_holds_every_case(fixture: dict[str, np.ndarray]) -> None:
    assert {k.split("/")[0] for k in fixture} == set(CASES) | {"problem", "sched"}
    assert {k.split("/")[1] for k in fixture if k.startswith("sched/")} == set(SCHEDULES)


@pytest.mark.parametrize("case", CASES)
def test_trajectory_matches_torch(fixture: dict[str, np.ndarray], case: str) -> None:
    """Our autograd computes each step's gradient, our optimizer (and scheduler) takes the
    step; the gradients, the learning rates and the parameters after every step must equal
    PyTorch's."""
    config = _config(fixture, case)
    X, Y = fixture["problem/X"], fixture["problem/Y"]
    W, b = _params(fixture)
    opt = _optimizer(config, W, b)
    sched = _scheduler(opt, config["scheduler"]) if config["scheduler"] else None
    ref_W, ref_b = fixture[f"{case}/W"], fixture[f"{case}/b"]
    assert ref_W.shape[0] == config["steps"] + 1
    for step in range(config["steps"]):
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups],
                                   fixture[f"{case}/lr"][step], rtol=1e-15, atol=0)
        opt.zero_grad()
        _loss(X, Y, W, b).backward()
        if config["skip_bias_at"] == step:
            b.grad = None  # a parameter without a gradient is left alone, state and all
        np.testing.assert_allclose(W.grad, fixture[f"{case}/grad_W"][step], rtol=RTOL,
                                   atol=ATOL, err_msg=f"{case}: grad W at step {step}")
        opt.step()
        if sched is not None:
            sched.step()
        np.testing.assert_allclose(W.data, ref_W[step + 1], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{case}: W after step {step + 1}")
        np.testing.assert_allclose(b.data, ref_b[step + 1], rtol=RTOL, atol=ATOL,
                                   err_msg=f"{case}: b after step {step + 1}")
    assert not np.allclose(ref_W[-1], ref_W[0])  # the reference really moved


@pytest.mark.parametrize("case", CASES)
def test_recorded_gradients_reproduce_the_trajectory(fixture: dict[str, np.ndarray],
                                                     case: str) -> None:
    """The update rules alone: feed PyTorch's own gradients, step by step."""
    config = _config(fixture, case)
    W, b = _params(fixture)
    opt = _optimizer(config, W, b)
    sched = _scheduler(opt, config["scheduler"]) if config["scheduler"] else None
    for step in range(config["steps"]):
        _feed(fixture, case, W, b, step)
        opt.step()
        if sched is not None:
            sched.step()
    np.testing.assert_allclose(W.data, fixture[f"{case}/W"][-1], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b.data, fixture[f"{case}/b"][-1], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", CASES)
def test_state_dict_matches_torch_and_loads_torch_state(fixture: dict[str, np.ndarray],
                                                        case: str) -> None:
    """After ``mid`` steps our state_dict has PyTorch's layout and numbers; and PyTorch's
    own state dict, loaded into a fresh optimizer, finishes PyTorch's trajectory."""
    config = _config(fixture, case)
    mid = config["mid"]
    torch_groups = json.loads(str(fixture[f"{case}/mid_groups"]))
    prefix = f"{case}/mid_state/"
    torch_state: dict[int, dict[str, np.ndarray]] = {}
    for key in fixture:
        if key.startswith(prefix):
            index, name = key[len(prefix):].split("/")
            torch_state.setdefault(int(index), {})[name] = fixture[key]

    W, b = _params(fixture)
    opt = _optimizer(config, W, b)
    sched = _scheduler(opt, config["scheduler"]) if config["scheduler"] else None
    for step in range(mid):
        _feed(fixture, case, W, b, step)
        opt.step()
        if sched is not None:
            sched.step()
    ours = opt.state_dict()
    assert list(ours) == ["state", "param_groups"]
    assert [g["params"] for g in ours["param_groups"]] == [g["params"] for g in torch_groups]
    for group, torch_group in zip(ours["param_groups"], torch_groups):
        assert list(group)[-1] == "params"
        for key, value in group.items():  # ours holds a subset of PyTorch's keys
            expected = torch_group[key]
            assert (list(value) if key == "betas" else value) == pytest.approx(expected), key
    assert sorted(ours["state"]) == sorted(torch_state)
    for index, buffers in torch_state.items():
        assert sorted(ours["state"][index]) == sorted(buffers)
        for name, value in buffers.items():
            np.testing.assert_allclose(ours["state"][index][name], value, rtol=RTOL,
                                       atol=ATOL, err_msg=f"{case}: state {index} {name}")
            if name == "step":
                assert ours["state"][index][name].dtype == np.float32
                assert ours["state"][index][name].shape == ()

    # PyTorch's state (with its foreach/maximize/... keys) into a fresh optimizer
    W2 = nn.Parameter(fixture[f"{case}/W"][mid].copy())
    b2 = nn.Parameter(fixture[f"{case}/b"][mid].copy())
    fresh = _optimizer(config, W2, b2)
    fresh.load_state_dict({"state": torch_state, "param_groups": torch_groups})
    assert all("foreach" not in g and "maximize" not in g for g in fresh.param_groups)
    for step in range(mid, config["steps"]):
        for group, lr in zip(fresh.param_groups, fixture[f"{case}/lr"][step]):
            assert step > mid or group["lr"] == lr  # the loaded rate
            group["lr"] = float(lr)  # what the scheduler (if any) set
        _feed(fixture, case, W2, b2, step)
        fresh.step()
    np.testing.assert_allclose(W2.data, fixture[f"{case}/W"][-1], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(b2.data, fixture[f"{case}/b"][-1], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", SCHEDULES)
def test_scheduler_learning_rates_match_torch(fixture: dict[str, np.ndarray],
                                              name: str) -> None:
    spec = json.loads(str(fixture[f"sched/{name}/config"]))
    p, q = nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(1))
    opt = optim.SGD([{"params": [p], "lr": spec["base_lrs"][0]},
                     {"params": [q], "lr": spec["base_lrs"][1]}])
    sched = _scheduler(opt, spec)
    lrs = [sched.get_last_lr()]
    for _ in range(spec["steps"]):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
    np.testing.assert_allclose(lrs, fixture[f"sched/{name}/lr"], rtol=1e-14, atol=1e-17)
    assert [g["lr"] for g in opt.param_groups] == lrs[-1]
    torch_state = json.loads(str(fixture[f"sched/{name}/state"]))
    ours = sched.state_dict()
    assert sorted(ours) == sorted(torch_state)
    for key, value in torch_state.items():
        if key == "lr_lambdas":
            assert ours[key] == value  # None for each plain function
        else:
            assert ours[key] == pytest.approx(value, rel=1e-14), key


@pytest.mark.parametrize("name", SCHEDULES)
def test_scheduler_resumes_from_its_state_dict(fixture: dict[str, np.ndarray],
                                               name: str) -> None:
    """Stop after 4 steps, rebuild optimizer and scheduler, load both states (scheduler
    created first, as PyTorch advises), go on: the same rates as an unbroken run."""
    spec = json.loads(str(fixture[f"sched/{name}/config"]))

    def build() -> tuple[optim.Optimizer, lr_scheduler.LRScheduler]:
        opt = optim.SGD([{"params": [nn.Parameter(np.zeros(1))], "lr": spec["base_lrs"][0]},
                         {"params": [nn.Parameter(np.zeros(1))], "lr": spec["base_lrs"][1]}])
        return opt, _scheduler(opt, spec)

    opt, sched = build()
    for _ in range(4):
        sched.step()
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    opt2, sched2 = build()
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert sched2.get_last_lr() == sched.get_last_lr()
    for _ in range(6):
        sched.step()
        sched2.step()
        assert sched2.get_last_lr() == sched.get_last_lr()
    np.testing.assert_allclose(sched.get_last_lr(), fixture[f"sched/{name}/lr"][10],
                               rtol=1e-14)


def test_lambda_lr_state_leaves_out_functions_and_keeps_callable_objects() -> None:
    class Scaled:
        def __init__(self, factor: float) -> None:
            self.factor = factor

        def __call__(self, epoch: int) -> float:
            return self.factor * (epoch + 1)

    p, q = nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(1))
    opt = optim.SGD([{"params": [p]}, {"params": [q]}], lr=0.1)
    sched = lr_scheduler.LambdaLR(opt, [lambda e: 0.5, Scaled(2.0)])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [None, {"factor": 2.0}]
    other = Scaled(1.0)
    sched2 = lr_scheduler.LambdaLR(optim.SGD([{"params": [p]}, {"params": [q]}], lr=0.1),
                                   [lambda e: 0.5, other])
    sched2.load_state_dict(state)
    assert other.factor == 2.0


def test_scheduler_state_is_checked_before_anything_changes() -> None:
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1)
    sched = lr_scheduler.StepLR(opt, 2)
    before = sched.state_dict()
    bad = [{**before, "base_lrs": [0.1, 0.2]}, {**before, "surprise": 1},
           {k: v for k, v in before.items() if k != "gamma"}, {**before, "last_epoch": 1.5},
           {**before, "gamma": "0.1"}]
    for state in bad:
        with pytest.raises(ValueError, match="StepLR.load_state_dict"):
            sched.load_state_dict(state)
        assert sched.state_dict() == before


def test_scheduler_arguments_follow_torch() -> None:
    p = nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=0.1)
    assert lr_scheduler.LinearLR(opt).get_last_lr() == pytest.approx([0.1 / 3])
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        lr_scheduler.LinearLR(opt, start_factor=0)
    with pytest.raises(ValueError, match="Expected 1 lr_lambdas, but got 2"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1.0, lambda e: 1.0])
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1), 2, last_epoch=3)
    with pytest.raises(TypeError, match="not an Optimizer"):
        lr_scheduler.StepLR([p], 2)


@pytest.mark.parametrize("case", CASES)
def test_float32_parameters_stay_float32(fixture: dict[str, np.ndarray], case: str) -> None:
    config = _config(fixture, case)
    X, Y = (fixture[k].astype(np.float32) for k in ("problem/X", "problem/Y"))
    W, b = _params(fixture, np.float32)
    W_data = W.data
    opt = _optimizer(config, W, b)
    sched = _scheduler(opt, config["scheduler"]) if config["scheduler"] else None
    for _ in range(3):
        opt.zero_grad()
        _loss(X, Y, W, b).backward()
        assert W.grad.dtype == np.float32
        opt.step()
        if sched is not None:
            sched.step()
        assert W.dtype == np.float32 and b.dtype == np.float32
    assert W.data is W_data  # updated in place
    for state in opt.state.values():
        for name, value in state.items():
            assert value.dtype == np.float32, name
    # float32 work follows the float64 reference to float32 accuracy
    np.testing.assert_allclose(W.data, fixture[f"{case}/W"][3], rtol=1e-4, atol=1e-5)


def test_a_float64_hyperparameter_does_not_widen_float32_updates() -> None:
    """A learning rate read back from a checkpoint may be a NumPy float64 or a 0-d array;
    NumPy would promote float32 * float64 array to float64."""
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    opt = optim.Adam([p])
    state = opt.state_dict()
    state["param_groups"][0]["lr"] = np.array(0.1)
    state["param_groups"][0]["betas"] = [np.float64(0.9), np.float64(0.99)]
    opt.load_state_dict(state)
    assert type(opt.param_groups[0]["lr"]) is float
    assert opt.param_groups[0]["betas"] == (0.9, 0.99)
    p.grad = np.ones(3, dtype=np.float32)
    opt.step()
    assert p.dtype == np.float32 and opt.state[p]["exp_avg"].dtype == np.float32


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1),
                                  lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps),
                                  lambda ps: optim.AdamW(ps, amsgrad=True)])
def test_every_update_bumps_the_version(make: Callable[[list[Tensor]], optim.Optimizer]
                                        ) -> None:
    """An optimizer step changes the parameter in place: its version counter (which lets a
    backward pass refuse a graph that saved the old values) must move."""
    w = nn.Parameter(np.ones(3))
    idle = nn.Parameter(np.ones(3))  # no gradient: not touched, no bump
    opt = make([w, idle])
    y = (w * w).sum()  # mul saves w
    y.backward(retain_graph=True)
    before, idle_before = w._version, idle._version
    opt.step()
    assert w._version > before and idle._version == idle_before
    with pytest.raises(RuntimeError, match=r"\(3,\)"):
        y.backward()  # the graph saved w before the step: refused, not a wrong gradient


def test_zero_grad_set_to_none_and_in_place() -> None:
    W = nn.Parameter(np.ones((2, 2)))
    opt = optim.Adam([W])
    (W * W).sum().backward()
    grad = W.grad
    opt.zero_grad(set_to_none=False)
    assert W.grad is grad and not grad.any()  # the same array, zeroed
    opt.zero_grad()
    assert W.grad is None
    opt.step()  # no gradient: nothing moves, no state
    np.testing.assert_array_equal(W.data, np.ones((2, 2)))
    assert opt.state == {}


def test_bad_gradient_stops_the_step_before_any_parameter_moves() -> None:
    a, b, c = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b, c]}], lr=0.1, momentum=0.9)
    a.grad, b.grad, c.grad = np.ones(3), np.ones(2), np.ones(5)
    with pytest.raises(ValueError, match=r"shape \(5,\) for a parameter of shape \(2,\)"):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones(3))
    assert opt.state == {}
    c.grad = np.ones(2, dtype=np.float32)
    with pytest.raises(TypeError, match="float32 gradient for a float64 parameter"):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones(3))


def test_positional_arguments_mean_what_they_mean_in_torch() -> None:
    p = nn.Parameter(np.ones(2))
    group = optim.SGD([p], 0.1, 0.9, 0.5).param_groups[0]
    assert (group["lr"], group["momentum"], group["dampening"], group["weight_decay"]) == \
        (0.1, 0.9, 0.5, 0)
    group = optim.SGD([p], 0.1, 0.9, 0, 0.01, True).param_groups[0]
    assert group["weight_decay"] == 0.01 and group["nesterov"] is True
    group = optim.Adam([p], 0.1, (0.8, 0.9), 1e-6, 0.1, True).param_groups[0]
    assert (group["betas"], group["eps"], group["weight_decay"], group["amsgrad"]) == \
        ((0.8, 0.9), 1e-6, 0.1, True)
    assert optim.SGD([p]).defaults == {"lr": 1e-3, "momentum": 0, "dampening": 0,
                                       "weight_decay": 0, "nesterov": False}
    assert optim.AdamW([p]).defaults["weight_decay"] == 0.01
    assert optim.Adam([p]).defaults == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                                        "weight_decay": 0, "amsgrad": False}
    with pytest.raises(TypeError, match="foreach"):
        optim.Adam([p], foreach=False)  # type: ignore[call-arg]


def test_parameter_groups_are_editable_and_checked() -> None:
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.SGD([{"params": a}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    opt.param_groups[1]["lr"] = 0.25
    a.grad, b.grad = np.ones(2), np.ones(2)
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.75)
    c = nn.Parameter(np.ones(1))
    opt.add_param_group({"params": [c], "momentum": 0.9})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="Invalid learning rate: -1.*parameter group 3"):
        opt.add_param_group({"params": [nn.Parameter(np.ones(1))], "lr": -1})
    assert len(opt.param_groups) == 3


def test_bad_arguments_raise() -> None:
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.SGD([p], lr=-1.0)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta parameter at index 0"):
        optim.Adam([p], betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="Invalid eps"):
        optim.Adam([p], eps=-1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.Adam([np.ones(2)])
    with pytest.raises(TypeError, match="named_parameters"):
        optim.Adam([("w", p)])
    with pytest.raises(TypeError, match="not a set"):
        optim.Adam({p})
    with pytest.raises(ValueError, match="non-leaf"):
        optim.Adam([p * 2])
    with pytest.raises(TypeError, match="single Tensor"):
        optim.Adam(p)


def _trained_adam(amsgrad: bool = False) -> tuple[optim.Adam, list[Tensor]]:
    params = [nn.Parameter(np.arange(6.0).reshape(2, 3)), nn.Parameter(np.ones(3))]
    opt = optim.Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.1}],
                     amsgrad=amsgrad)
    for _ in range(2):
        for p in params:
            p.grad = np.full(p.shape, 0.5)
        opt.step()
    return opt, params


def test_load_state_dict_is_all_or_nothing() -> None:
    opt, params = _trained_adam()
    good = opt.state_dict()
    target, _ = _trained_adam()
    target.param_groups[0]["lr"] = 0.123
    before = target.state_dict()

    def variant(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        state = opt.state_dict()
        change(state)
        return state

    cases = [
        (variant(lambda s: s["state"][1].update(exp_avg=np.ones(4))), r"shape \(4,\)"),
        (variant(lambda s: s["state"][1].update(momentum_buffer=np.ones(3))),
         "momentum_buffer"),
        (variant(lambda s: s["state"][1].pop("exp_avg_sq")), "lacks.*exp_avg_sq"),
        (variant(lambda s: s["state"].update({7: {}})), "parameter 7"),
        (variant(lambda s: s["param_groups"].pop()), "2 parameter groups|1 parameter group"),
        (variant(lambda s: s["param_groups"][0]["params"].append(9)), "group 0 has 2"),
        (variant(lambda s: s["param_groups"][1].update(lr=-0.5)), "Invalid learning rate"),
        (variant(lambda s: s["param_groups"][1].pop("eps")), "eps"),
        (variant(lambda s: s["param_groups"][1].update(maximize=True)), "maximize"),
        (variant(lambda s: s["param_groups"][1].update(decoupled_weight_decay=True)),
         "AdamW"),
        (variant(lambda s: s.update(extra=1)), "'state' and 'param_groups'"),
    ]
    for state, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            target.load_state_dict(state)
        after = target.state_dict()
        assert after["param_groups"] == before["param_groups"]
        for index, buffers in before["state"].items():
            for key, value in buffers.items():
                np.testing.assert_array_equal(after["state"][index][key], value)
    target.load_state_dict(good)
    assert target.param_groups[0]["lr"] == 1e-3


def test_state_dict_is_a_snapshot_and_loading_copies() -> None:
    opt, params = _trained_adam(amsgrad=True)
    state = opt.state_dict()
    assert sorted(state["state"][0]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert float(state["state"][0]["step"]) == 2.0
    snapshot = state["state"][0]["exp_avg"].copy()
    params[0].grad = np.ones((2, 3))
    opt.step()
    np.testing.assert_array_equal(state["state"][0]["exp_avg"], snapshot)
    other, _ = _trained_adam(amsgrad=True)
    other.load_state_dict(state)
    state["state"][0]["exp_avg"][...] = 99.0
    assert not (other.state[other.param_groups[0]["params"][0]]["exp_avg"] == 99.0).any()


def test_loaded_buffers_take_the_parameter_dtype() -> None:
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.load_state_dict({"state": {0: {"momentum_buffer": np.full(3, 0.5)}},
                         "param_groups": [{"lr": 0.1, "momentum": 0.9, "dampening": 0,
                                           "weight_decay": 0, "nesterov": False,
                                           "foreach": None, "maximize": False,
                                           "differentiable": False, "fused": None,
                                           "params": [0]}]})
    assert opt.state[p]["momentum_buffer"].dtype == np.float32
    p.grad = np.ones(3, dtype=np.float32)
    opt.step()
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], 0.9 * 0.5 + 1)

