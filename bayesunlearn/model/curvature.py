"""Curvature of the data term, in NumPy: the GGN (whole, a block, or its diagonal) and NLL gradients.

For a Gaussian likelihood the GGN of the data term is Σ_i J_iᵀJ_i / σ², where
J_i = ∂f(x_i, θ)/∂θ (model/network.py). The exact Hessian, which needs second
derivatives, is model/autodiff.py's.

J is (n, P): at 10k parameters and n = 50k that is 4 GB. Above `JACOBIAN_BUDGET`
entries the sums run over row batches (the full GGN with an in-place SYRK:
half a GEMM's flops), so memory is one batch of J plus the result.
"""

from __future__ import annotations

import numpy as np

from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.model.network import outputs_and_jacobians
from bayesunlearn.numerics import dense
from bayesunlearn.numerics.threads import blas_for

JACOBIAN_BUDGET = 2**21  # float64 entries of J per batch: 16 MB


def row_batches(n: int, n_params: int) -> list[slice]:
    """Row slices whose Jacobians fit `JACOBIAN_BUDGET`; one slice when the whole J does."""
    size = max(1, JACOBIAN_BUDGET // max(1, n_params))
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def data_curvature(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """GGN H = JᵀJ/σ² and NLL gradient g = Jᵀ(f − y)/σ², summed over the given records (H exactly symmetric)."""
    p = model.spec.n_params
    inv_var = model.noise_std ** -2
    hessian, gradient = np.zeros((p, p), order="F"), np.zeros(p)
    with blas_for(p):
        for rows in row_batches(len(x), p):
            f, jac = outputs_and_jacobians(model.spec, theta, x[rows])
            dense.rank_update(hessian, jac.T, inv_var, mirror=False)
            gradient += inv_var * (jac.T @ (f - y[rows]))
    return dense.mirror_lower(hessian), gradient


def restricted_ggn(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray, index: slice,
                   diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
    """The GGN over the parameters in `index` — its diagonal, or the dense block — and the NLL gradient
    there, accumulated over row batches. For the output layer the block is exact: the network's output
    is linear in it."""
    size = len(range(*index.indices(model.spec.n_params)))
    total = (np.zeros(size) if diagonal else np.zeros((size, size)), np.zeros(size))
    for number, rows in enumerate(row_batches(len(x), model.spec.n_params)):
        f, jac = outputs_and_jacobians(model.spec, theta, x[rows])
        jac, inv_var = jac[:, index], model.noise_std ** -2
        grad = inv_var * (jac.T @ (f - y[rows]))
        block = inv_var * np.einsum("ij,ij->j", jac, jac) if diagonal else inv_var * (jac.T @ jac)
        total = (block, grad) if number == 0 else (total[0] + block, total[1] + grad)
    return total
