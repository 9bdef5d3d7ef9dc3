"""BLAS threading for small matrices.

Right after a TensorFlow call, TF's thread pool still spins on the cores; a
multi-threaded BLAS call on a 151 × 151 matrix then fights it and took 10×
longer here (eigh: 25 ms instead of 2 ms). Small problems run single-threaded.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

SMALL = 2000  # matrices up to this size run on one BLAS thread


@functools.cache
def _controller() -> ThreadpoolController:
    # Built once: `threadpool_limits` rescans every loaded library on each call, which
    # cost milliseconds inside a TensorFlow process, as much as the unlearning itself.
    return ThreadpoolController()


@contextmanager
def blas_for(size: int) -> Iterator[None]:
    if size <= SMALL:
        with _controller().limit(limits=1, user_api="blas"):
            yield
    else:
        yield
