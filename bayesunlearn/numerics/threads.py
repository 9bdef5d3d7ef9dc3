"""BLAS threading: all threads for P × P work, one for everything smaller.

Right after a TensorFlow call, TF's thread pool still spins on the cores; a
multi-threaded BLAS call on a 151 × 151 matrix then fights it and took 10×
longer here (eigh: 25 ms instead of 2 ms). In a 10k-parameter downdate, one
multi-threaded (P, 50) product after the Jacobians slowed the next P × P GEMM
by 40 %, and a 50 × 50 Gram product took 0.1 s instead of 2 ms. So small
matrices run on one BLAS thread, and only P × P products above SMALL use all.

One thread is also what makes the small work reproducible: OpenBLAS rounds a product
differently with another thread count (a 400 × 151 Gram product, too), and the count
it starts with is the host's cores. Importing `bayesunlearn` sets the one-thread
default for both OpenBLAS libraries (NumPy's and SciPy's; bayesunlearn/__init__.py,
which every stage depends on); P × P work above SMALL still rounds by the host's
core count (README, Reproducibility).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bayesunlearn

SMALL = 2000  # matrices up to this size run on one BLAS thread
# What `blas_for` gives P × P work: the count OpenBLAS started with (the host's cores or a caller's limit,
# read by the package's set-up before it set one thread), unless `one_thread_throughout` says 1.
_all_threads = [bayesunlearn.BLAS_THREADS]


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    # the package's controller: `threadpool_limits` rescans every loaded library on each call, which cost
    # milliseconds inside a TensorFlow process, as much as the unlearning itself
    with bayesunlearn.BLAS.limit(limits=n, user_api="blas"):
        yield


@contextmanager
def one_thread_throughout() -> Iterator[None]:
    """One BLAS thread inside, P × P work included: as on a Dask worker (started with one), wherever it runs."""
    saved, _all_threads[0] = _all_threads[0], 1
    try:
        yield
    finally:
        _all_threads[0] = saved


def one_blas_thread():
    return blas_threads(1)


def blas_for(size: int):
    """One BLAS thread for matrices up to SMALL, all of them above."""
    return blas_threads(1 if size <= SMALL else _all_threads[0])
