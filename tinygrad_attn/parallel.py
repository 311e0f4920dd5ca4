"""Work on every core: one persistent thread pool that splits large arrays into row
chunks, and the thread count a user sets (``set_num_threads``), shared with NumPy's BLAS.

NumPy releases the GIL inside ufuncs, reductions and BLAS calls, so threads that each
run NumPy on their own rows of an array run in parallel. Three rules keep this simple:

- **Small arrays, and one thread, never see the pool.** An op asks :func:`split` for row
  slices; it gets None on one thread or below about a quarter of a million elements, and
  then runs its single-threaded code, unchanged: per-op overhead on small tensors, and
  the speed of one thread, stay what they were.
- **Results do not depend on the thread count.** Every part computes its rows exactly as
  the whole array would: elementwise maths, sums along a row, and matrix products whose
  every element sums over ``k`` in the same order whatever rows share its call (BLAS
  kernels do; parts stay large enough for OpenBLAS's regular kernels). Nothing is summed
  across parts, so 1 and 16 threads give the same bits (tests check it).
- **One kind of thread.** The library's matrix products run BLAS on one thread (inside
  a part, or whole when small): the pool, not OpenBLAS, spreads them over the cores.
  OpenBLAS's own threads spin while they wait for each other; when another program holds
  a core they stall, and a product can take several times longer than on one thread.
  The pool's threads sleep while they wait, so a busy machine slows them down gently.

This module imports nothing of the package: the ops import it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import threadpoolctl

# Arrays below MIN_PARALLEL elements are not split; parts hold at least MIN_PART. Each
# thread gets PARTS_PER_THREAD parts to take, so one the OS pauses delays little.
MIN_PARALLEL = 1 << 18
MIN_PART = 1 << 15
PARTS_PER_THREAD = 2
# Products of fewer multiply-adds (about 0.1 ms on one core) are not split; each part of
# a product keeps GEMM_MIN_ROWS rows and GEMM_MIN_PART multiply-adds (above OpenBLAS's
# small-matrix kernels), and there is one part per thread: each part packs the other
# operand anew.
GEMM_MIN_WORK = 1 << 23
GEMM_MIN_ROWS = 64
GEMM_MIN_PART = 1 << 21
# OpenBLAS runs products of this many multiply-adds and more on its own threads.
BLAS_THREADED = 1 << 18
# Attention's (batch, head) blocks: about this many scores each (fixed by the shape).
BLOCK_ELEMENTS = 1 << 16
MAX_BLOCKS = 64


def _default_threads() -> int:
    """``OMP_NUM_THREADS`` when set to a positive count (PyTorch honours it too), else the
    cores this process may run on (its CPU affinity, where the OS has one)."""
    requested = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


_num_threads = _default_threads()
_workers: list[threading.Thread] = []
_jobs: queue.SimpleQueue = queue.SimpleQueue()
_pool_lock = threading.Lock()
_local = threading.local()  # .busy: this thread is running a chunk now
_blas: list | None = None  # threadpoolctl's controllers of the loaded BLAS libraries


def get_num_threads() -> int:
    """The number of threads used for parallel work on the CPU (PyTorch's
    ``torch.get_num_threads``)."""
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for parallel work: this library's pool and NumPy's BLAS
    (PyTorch's ``torch.set_num_threads``). Results are the same for every ``n``."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {n!r}")
    with _pool_lock:
        _num_threads = n
        while len(_workers) > n - 1:  # a None job tells one worker to finish
            _workers.pop()
            _jobs.put(None)
    for lib in _blas_libraries():
        lib.set_num_threads(n)


def _blas_libraries() -> list:
    global _blas
    if _blas is None:
        _blas = [lib for lib in threadpoolctl.ThreadpoolController().lib_controllers
                 if lib.user_api == "blas"]
    return _blas


def split(rows: int, row_size: int = 1, min_rows: int = 1, min_part: int | None = None,
          per_thread: int | None = None, min_total: int | None = None
          ) -> list[slice] | None:
    """Slices that split ``rows`` rows of ``row_size`` elements each into parts for the
    pool's threads (``per_thread`` each), every part at least ``min_rows`` rows and
    ``min_part`` elements; None on one thread, or when the array is smaller than
    ``min_total`` elements or too small for two parts."""
    threads = _num_threads
    total = rows * row_size
    if threads == 1 or total < (MIN_PARALLEL if min_total is None else min_total):
        return None
    count = min(threads * (PARTS_PER_THREAD if per_thread is None else per_thread),
                rows // min_rows, total // (MIN_PART if min_part is None else min_part))
    return _even(rows, count) if count > 1 else None


def blocks(rows: int, row_size: int) -> list[slice] | None:
    """Slices of about BLOCK_ELEMENTS elements each (at most MAX_BLOCKS), fixed by the
    shape alone: for work whose parts are independent calls anyway, where blocks that
    fit a core's cache pay on one thread too. None when there is one block."""
    count = min(MAX_BLOCKS, rows, rows * row_size // BLOCK_ELEMENTS)
    return _even(rows, count) if count > 1 else None


def _even(rows: int, count: int) -> list[slice]:
    step, extra = divmod(rows, count)
    bounds = [i * step + min(i, extra) for i in range(count + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(count)]


def map_rows(fn: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    """``fn(*arrays)`` for an ``fn`` that computes each row of its result from the same
    row of its inputs (elementwise maths with broadcasting, or row-wise maths along the
    last axis), computed by parts of the rows for large arrays.

    An input with fewer dims, or a leading dim of 1, broadcasts: every part sees it whole.
    """
    for array in arrays:  # a loop, not any(): this is every small op's path too
        if array.size >= MIN_PARALLEL:
            break
    else:
        return fn(*arrays)
    shape = np.broadcast_shapes(*[a.shape for a in arrays])
    parts = split(shape[0], math.prod(shape) // shape[0]) if shape and shape[0] else None
    if parts is None:
        return fn(*arrays)
    cut = [a.ndim == len(shape) and a.shape[0] == shape[0] for a in arrays]

    def call(part: slice) -> np.ndarray:
        return fn(*[a[part] if sliced else a for a, sliced in zip(arrays, cut)])

    probe = call(slice(0, 1))  # one row tells the result's dtype and row shape
    out = np.empty(shape[:1] + probe.shape[1:], dtype=probe.dtype)

    def write(part: slice) -> None:
        out[part] = call(part)

    run(write, parts)
    return out


def matmul(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (``+ bias``, a row vector) for 2-D ``a`` and ``b``, split over the pool
    when the product is large.

    Each part is a block of the output's rows (or of its columns, when those are more):
    a smaller product whose every element sums over ``k`` in the same order as in the
    whole product.
    """
    m, n = a.shape[0], b.shape[1]
    parts = None if _num_threads == 1 else split(
        max(m, n), a.shape[1] * min(m, n), GEMM_MIN_ROWS, GEMM_MIN_PART, 1, GEMM_MIN_WORK)
    if parts is None:
        if _num_threads > 1 and m * n * a.shape[1] >= BLAS_THREADED:
            with one_blas_thread():
                out = a @ b
        else:
            out = a @ b
        if bias is not None:
            out += bias
        return out
    out = np.empty((m, n), dtype=np.result_type(a, b))

    def rows(part: slice) -> None:
        np.matmul(a[part], b, out=out[part])
        if bias is not None:
            out[part] += bias

    def columns(part: slice) -> None:
        np.matmul(a, b[:, part], out=out[:, part])
        if bias is not None:
            out[:, part] += bias[part]

    run(rows if m >= n else columns, parts, blas=True)
    return out


def run(work: Callable[[slice], object], parts: Sequence[slice], blas: bool = False
        ) -> None:
    """Call ``work(part)`` for every part, spread over the pool's threads; returns when
    all are done, raising the first error any of them raised.

    The calling thread takes parts too, and every thread takes the next part not yet
    taken, so a thread the OS has paused holds up at most the one part it is running.
    Pass ``blas=True`` when ``work`` calls BLAS on products large enough for OpenBLAS to
    thread (BLAS_THREADED): it then runs on one thread inside each part.
    """
    threads = min(_num_threads, len(parts))
    if getattr(_local, "busy", False):  # a part of a part: here, in order
        for part in parts:
            work(part)
    elif blas and _num_threads > 1:
        with one_blas_thread():
            _run(work, parts, threads)
    else:
        _run(work, parts, threads)


def _run(work: Callable[[slice], object], parts: Sequence[slice], threads: int) -> None:
    if threads == 1:
        for part in parts:
            work(part)
    else:
        _run_parallel(work, parts, threads)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread for the block (then as it was): the library's own products
    never wake OpenBLAS's spinning threads."""
    libs = [(lib, lib.get_num_threads()) for lib in _blas_libraries()]
    for lib, count in libs:
        if count > 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, count in libs:
            if count > 1:
                lib.set_num_threads(count)


def _run_parallel(work: Callable[[slice], object], parts: Sequence[slice], threads: int
                  ) -> None:
    _start_workers(threads - 1)
    taken = itertools.count()  # next() on it is atomic: each part goes to one thread
    done: queue.SimpleQueue = queue.SimpleQueue()
    # NumPy's floating-point error settings belong to each thread: the caller's apply.
    job = (work, parts, taken, done, np.geterr())
    for _ in range(threads - 1):
        _jobs.put(job)
    mine, error = _take_parts(work, parts, taken)
    for _ in range(len(parts) - mine):  # each part another thread ran reports here
        failure = done.get()
        if error is None:
            error = failure
    if error is not None:
        raise error


def _take_parts(work: Callable[[slice], object], parts: Sequence[slice],
                taken: itertools.count, done: queue.SimpleQueue | None = None
                ) -> tuple[int, BaseException | None]:
    """Run parts until none is left; report each to ``done`` (a worker) or count them
    and keep the first error (the calling thread)."""
    count, error = 0, None
    _local.busy = True
    try:
        while (index := next(taken)) < len(parts):
            count += 1
            try:
                work(parts[index])
            except BaseException as err:  # the caller raises it once all parts are done
                if done is not None:
                    done.put(err)
                elif error is None:
                    error = err
            else:
                if done is not None:
                    done.put(None)
    finally:
        _local.busy = False
    return count, error


def _start_workers(count: int) -> None:
    if len(_workers) >= count:
        return
    with _pool_lock:
        while len(_workers) < count:
            worker = threading.Thread(target=_work_loop, name="tinygrad_attn-worker",
                                      daemon=True)
            worker.start()
            _workers.append(worker)


def _work_loop() -> None:
    while (job := _jobs.get()) is not None:  # None: the pool shrank, this thread ends
        work, parts, taken, done, errors = job
        with np.errstate(**errors):
            _take_parts(work, parts, taken, done)


def _forget_workers() -> None:
    """A forked child has no threads but the one that forked: start anew."""
    global _jobs, _pool_lock, _blas
    _workers.clear()
    _jobs, _pool_lock, _blas = queue.SimpleQueue(), threading.Lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)
