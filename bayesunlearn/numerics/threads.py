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
default for both OpenBLAS libraries (NumPy's and SciPy's); P × P work above SMALL
still rounds by the host's core count (README, Reproducibility).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import scipy.linalg  # noqa: F401  (loads SciPy's own OpenBLAS, so that the controller sees both)
from threadpoolctl import ThreadpoolController

SMALL = 2000  # matrices up to this size run on one BLAS thread


@functools.cache
def _blas() -> tuple[ThreadpoolController, int]:
    """The controller and the BLAS thread count found when it was built (its own or a caller's limit).

    Built once: `threadpool_limits` rescans every loaded library on each call, which
    cost milliseconds inside a TensorFlow process, as much as the unlearning itself.
    """
    controller = ThreadpoolController()
    threads = [lib.num_threads for lib in controller.select(user_api="blas").lib_controllers]
    return controller, max(threads, default=1)


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    with _blas()[0].limit(limits=n, user_api="blas"):
        yield


def one_thread_by_default() -> None:
    """One BLAS thread from here on, outside `blas_for`'s P × P work (the limit is never lifted)."""
    _blas()[0].limit(limits=1, user_api="blas")


def one_blas_thread():
    return blas_threads(1)


def blas_for(size: int):
    """One BLAS thread for matrices up to SMALL, all of them above."""
    return blas_threads(1 if size <= SMALL else _blas()[1])
