"""BLAS threading for small matrices.

Right after a TensorFlow call, TF's thread pool still spins on the cores; a
multi-threaded BLAS call on a 151 × 151 matrix then fights it and took 10×
longer here (eigh: 25 ms instead of 2 ms). Small problems run single-threaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

SMALL = 2000  # matrices up to this size run on one BLAS thread


@contextmanager
def blas_for(size: int) -> Iterator[None]:
    if size <= SMALL:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    else:
        yield
