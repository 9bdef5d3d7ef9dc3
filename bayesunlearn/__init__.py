"""Bayesian machine unlearning: the math, free of DVC and Prefect, in layers that import only downwards.

  io/           files and settings: params.yaml (settings), requests, stage contracts, data sets, storage
  numerics/     dense linear algebra, BLAS threads, distances and scores (numpy/SciPy)
  model/        the network f(x, θ), its likelihood and prior, curvature, MAP training (TensorFlow)
  kinds.py      the registry of posterior kinds (TensorFlow-free: settings and light tools read it)
  posteriors/   the posterior, its matrix types (one per storage), Laplace and VI fits
  unlearning/   removing records: Gaussian division, variational operators, the method suite, the gate
  experiments/  judging unlearning against retrains: evaluation, the study and sweep grids, plots, reports
"""

import os
import sys

# OpenBLAS chooses its kernels by the CPU it runs on, and an AVX-512 kernel rounds a product differently from
# an AVX2 one: the same data, params and code gave other bytes on other hosts (a cloud VM's CPU changes from
# one boot to the next). On x86-64 every process that imports this package before NumPy (every stage, flow
# and Dask worker they start: the setting is inherited) uses the AVX2 (Haswell) kernels, which every x86-64
# CPU since 2013 runs; on AVX-512 hosts large products take about 1.5x longer. A caller's own
# OPENBLAS_CORETYPE wins. With NumPy already loaded it would come too late and would split a process from
# the workers it starts, so it is not set then.
BLAS_KERNEL = "Haswell"


def _avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False  # not Linux: the library's own choice
    return {"avx2", "fma"} <= set(flags)


if "numpy" not in sys.modules and _avx2():
    os.environ.setdefault("OPENBLAS_CORETYPE", BLAS_KERNEL)


def _blas_set_up():
    """The controller of NumPy's and SciPy's OpenBLAS and the thread count they started with; from here on
    one thread, which numerics/threads.py raises for P × P work only: a product's rounding depends on its
    thread count, and the count OpenBLAS starts with is the host's cores."""
    import numpy  # noqa: F401  (both libraries load here, after the kernel is chosen)
    import scipy.linalg  # noqa: F401
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    threads = max((lib.num_threads for lib in controller.select(user_api="blas").lib_controllers), default=1)
    controller.limit(limits=1, user_api="blas")  # never lifted
    return controller, threads


BLAS, BLAS_THREADS = _blas_set_up()
