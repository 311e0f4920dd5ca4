"""The thread pool: results do not depend on the thread count, split and whole arrays
agree, and the thread count is the user's to set (PyTorch's set_num_threads)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import threadpoolctl

import tinygrad_attn as ta
from tinygrad_attn import nn, parallel
from tinygrad_attn.ops.samples import SAMPLES

CASES = [(op, c) for op, cases in SAMPLES.items() for c in cases]


@pytest.fixture(autouse=True)
def restore_threads():
    before = ta.get_num_threads()
    yield
    ta.set_num_threads(before)


def encoder_step(threads: int, size: tuple[int, ...], dtype: type = np.float32,
                 **layer_args) -> list[np.ndarray]:
    """Output and every gradient of one training step of a fresh encoder layer (with
    dropout and a padding mask), run with ``threads`` threads."""
    ta.set_num_threads(threads)
    batch, length, width, heads, ff = size
    ta.manual_seed(0)
    layer = nn.TransformerEncoderLayer(width, heads, ff, dropout=0.1, batch_first=True,
                                       **layer_args).to(dtype)
    x = ta.Tensor(np.random.default_rng(1).standard_normal((batch, length, width)).astype(
        dtype), requires_grad=True)
    padding = np.zeros((batch, length), dtype=bool)
    padding[::3, -5:] = True
    out = layer(x, src_key_padding_mask=padding)
    (out * out).sum().backward()
    return [out.data, x.grad] + [p.grad for p in layer.parameters()]


LARGE = (16, 128, 256, 8, 1024)


@pytest.mark.parametrize("layer_args", [{}, {"norm_first": True, "activation": "gelu"}])
def test_encoder_layer_is_bit_identical_on_1_and_n_threads(layer_args):
    one = encoder_step(1, LARGE, **layer_args)
    for threads in (2, 3):
        many = encoder_step(threads, LARGE, **layer_args)
        for a, b in zip(one, many):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_large_arrays_are_split(monkeypatch):
    """The sizes above do reach the pool, products and rows both (else the test above
    proves nothing)."""
    calls = []
    run = parallel.run
    monkeypatch.setattr(parallel, "run", lambda work, parts, blas=False: (
        calls.append((len(parts), blas)), run(work, parts, blas)))
    encoder_step(2, LARGE)
    assert {(2, True), (4, False), (16, True)} <= set(calls)


def split_everything(monkeypatch) -> None:
    """Lower the thresholds so that even tiny arrays are split into parts of a row."""
    for name in ("MIN_PARALLEL", "MIN_PART", "GEMM_MIN_WORK", "GEMM_MIN_ROWS",
                 "GEMM_MIN_PART", "BLOCK_ELEMENTS"):
        monkeypatch.setattr(parallel, name, 1)
    monkeypatch.setattr(parallel, "PARTS_PER_THREAD", 1000)


def test_split_arrays_agree_with_whole_ones(monkeypatch):
    """A small layer's ops split into parts of one row match the unsplit ones to
    float64 round-off."""
    size = (4, 8, 16, 2, 32)
    whole = encoder_step(2, size, np.float64)
    split_everything(monkeypatch)
    split = encoder_step(2, size, np.float64)
    for a, b in zip(whole, split):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def run_case(case, dtype: type) -> list[np.ndarray]:
    inputs = [ta.Tensor(t.data.astype(dtype), requires_grad=True)
              if isinstance(t, ta.Tensor) and t.dtype.kind == "f" else t
              for t in case.inputs(seed=3)]
    ta.manual_seed(0)
    out = case.fn(*inputs)
    out.backward(np.linspace(-1, 1, out.data.size, dtype=out.data.dtype).reshape(out.shape))
    return [out.data] + [t.grad for t in inputs if isinstance(t, ta.Tensor)
                         and t.requires_grad]


@pytest.mark.parametrize("op,case", CASES, ids=[f"{o}[{c.label}]" for o, c in CASES])
def test_every_op_split_into_rows_agrees_with_the_whole(monkeypatch, op, case):
    """Every op's sample cases, with every op split as finely as it goes, on 3 threads:
    the same values (to float64 round-off) and the same dtypes (float32 stays float32)."""
    ta.set_num_threads(3)
    for dtype, tolerance in ((np.float64, 1e-12), (np.float32, 1e-5)):
        with monkeypatch.context() as patch:
            whole = run_case(case, dtype)
            split_everything(patch)
            split = run_case(case, dtype)
        for a, b in zip(whole, split):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)


def test_parts_cover_the_rows_once_and_one_thread_splits_nothing():
    ta.set_num_threads(4)
    assert parallel.split(10, 10) is None  # small: the single-threaded path
    parts = parallel.split(1000, 1000)
    assert len(parts) == 4 * parallel.PARTS_PER_THREAD
    covered = np.zeros(1000, dtype=int)
    for part in parts:
        covered[part] += 1
    assert (covered == 1).all()
    blocks = parallel.blocks(1000, 1000)
    ta.set_num_threads(1)
    assert parallel.split(1000, 1000) is None
    assert parallel.blocks(1000, 1000) == blocks  # attention's blocks: the shape's alone


@pytest.mark.parametrize("threads", [1, 3])
def test_run_covers_every_part_and_raises_errors(threads):
    ta.set_num_threads(threads)
    out = np.zeros(100)
    parts = [slice(i, i + 10) for i in range(0, 100, 10)]

    def fill(part: slice) -> None:
        out[part] = np.arange(100)[part] + 1
        parallel.run(lambda inner: None, [slice(0, 1), slice(1, 2)])  # nested: inline

    parallel.run(fill, parts)
    assert np.array_equal(out, np.arange(100) + 1)

    def fail(part: slice) -> None:
        if part.start == 50:
            raise ValueError("part 50")

    with pytest.raises(ValueError, match="part 50"):
        parallel.run(fail, parts)
    parallel.run(fill, parts)  # the pool still works after an error


def test_parts_run_under_the_callers_floating_point_error_settings():
    ta.set_num_threads(3)
    seen = []

    def record(part: slice) -> None:
        seen.append(np.geterr()["divide"])
        time.sleep(0.005)  # long enough for the other threads to take parts too

    with np.errstate(divide="raise"):
        parallel.run(record, [slice(i, i + 1) for i in range(8)])
    assert seen == ["raise"] * 8


def test_set_num_threads_sets_the_pool_and_blas():
    default = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count()
    assert parallel._default_threads() == default
    ta.set_num_threads(3)
    assert ta.get_num_threads() == 3
    blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 3 for lib in blas)
    ta.set_num_threads(1)
    assert ta.get_num_threads() == 1
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="set_num_threads"):
            ta.set_num_threads(bad)


def test_blas_threads_are_restored_after_a_parallel_product():
    ta.set_num_threads(2)
    a = np.ones((1024, 512), dtype=np.float32)
    assert np.array_equal(parallel.matmul(a, a.T), a @ a.T)
    blas = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert all(lib["num_threads"] == 2 for lib in blas)


def test_default_thread_count_honours_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert parallel._default_threads() == 3
    for unusable in ("", "0", "two"):
        monkeypatch.setenv("OMP_NUM_THREADS", unusable)
        assert parallel._default_threads() >= 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    if hasattr(os, "sched_getaffinity"):
        assert parallel._default_threads() == len(os.sched_getaffinity(0))
