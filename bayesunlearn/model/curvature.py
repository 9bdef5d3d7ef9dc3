"""Curvature of the data term, in NumPy: the GGN (whole, a block, or its diagonal) and NLL gradients.

For a Gaussian likelihood the GGN of the data term is Σ_i J_iᵀJ_i / σ², where
J_i = ∂f(x_i, θ)/∂θ (model/network.py). The exact Hessian, which needs second
derivatives, is model/autodiff.py's.

J is (n, P): at 10k parameters and n = 50k that is 4 GB. Above `JACOBIAN_BUDGET`
entries the sums run over row batches (the full GGN with an in-place SYRK:
half a GEMM's flops), so memory is one batch of J plus the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.model.network import inputs_and_sensitivities, outputs_and_jacobians
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


def _layer_rows(model: RegressionModel, theta: np.ndarray, x: np.ndarray):
    """Per row batch: f, and per layer ã (inputs with a 1 for the bias) and δ; no Jacobian is formed."""
    width = sum(a + b + 1 for a, b in model.spec.shapes)
    for rows in row_batches(len(x), width):
        f, layer_inputs, deltas = inputs_and_sensitivities(model.spec, theta, x[rows])
        yield rows, f, [(np.column_stack([h, np.ones(len(h))]), d) for h, d in zip(layer_inputs, deltas, strict=True)]


@dataclass(frozen=True)
class KroneckerFactors:
    """Per layer l the factors of KFAC over `count` records: A_l = Σ_i ã_i ã_iᵀ, with ã_i the layer's input
    and a 1 for the bias, and G_l = Σ_i δ_i δ_iᵀ/σ², with δ_i the output's sensitivity to the layer's
    pre-activations; and the records' NLL gradient. Sums over records, so shards add and deletions subtract."""

    inputs: tuple[np.ndarray, ...]        # A_l, (fan_in + 1, fan_in + 1)
    sensitivities: tuple[np.ndarray, ...]  # G_l, (fan_out, fan_out)
    count: int
    gradient: np.ndarray

    def plus(self, other: KroneckerFactors, sign: float = 1.0) -> KroneckerFactors:
        """These records' factors with `other`'s added (sign +1) or removed (sign −1)."""
        return KroneckerFactors(tuple(a + sign * b for a, b in zip(self.inputs, other.inputs, strict=True)),
                                tuple(g + sign * h for g, h in zip(self.sensitivities, other.sensitivities,
                                                                   strict=True)),
                                self.count + int(sign) * other.count, self.gradient + sign * other.gradient)


def kronecker_factors(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> KroneckerFactors:
    """KFAC's factors and the NLL gradient over the records, accumulated over row batches.

    The GGN block of layer l is Σ_i (ã_i ã_iᵀ) ⊗ (δ_i δ_iᵀ)/σ² exactly (θ holds each layer's weights
    row-major and then its bias, so its Jacobian row is ã_i ⊗ δ_i); KFAC replaces this sum of Kronecker
    products by A_l ⊗ G_l / n. That is the approximation; it is exact for one record and for the output
    layer of a scalar-output network (δ = 1 there)."""
    inv_var = model.noise_std ** -2
    shapes = model.spec.shapes
    inputs = [np.zeros((a + 1, a + 1)) for a, _ in shapes]
    sensitivities = [np.zeros((b, b)) for _, b in shapes]
    grads = [np.zeros((a + 1, b)) for a, b in shapes]
    for rows, f, layers in _layer_rows(model, theta, x):
        residual = inv_var * (f - y[rows])
        for layer, (augmented, delta) in enumerate(layers):
            inputs[layer] += augmented.T @ augmented
            sensitivities[layer] += inv_var * (delta.T @ delta)
            grads[layer] += augmented.T @ (residual[:, None] * delta)
    gradient = np.concatenate([g.ravel() for g in grads])
    return KroneckerFactors(tuple(inputs), tuple(sensitivities), len(x), gradient)


def diagonal_ggn(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """diag(Σ_i J_iᵀJ_i)/σ² and the NLL gradient from each layer's ã and δ (J_i's layer part is ã_i ⊗ δ_i, so its
    square is ã_i² ⊗ δ_i²): one (fan_in+1) × fan_out product per layer and batch, never a row of J."""
    inv_var = model.noise_std ** -2
    diagonal = [np.zeros((a + 1, b)) for a, b in model.spec.shapes]
    gradient = [np.zeros((a + 1, b)) for a, b in model.spec.shapes]
    for rows, f, layers in _layer_rows(model, theta, x):
        residual = inv_var * (f - y[rows])
        for layer, (augmented, delta) in enumerate(layers):
            diagonal[layer] += inv_var * ((augmented * augmented).T @ (delta * delta))
            gradient[layer] += augmented.T @ (residual[:, None] * delta)
    return np.concatenate([d.ravel() for d in diagonal]), np.concatenate([g.ravel() for g in gradient])


def selected_jacobian(model: RegressionModel, theta: np.ndarray, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """J[:, indices] (n, S), gathered from each layer's ã and δ without the other P − S columns."""
    columns = np.empty((len(x), len(indices)))
    starts = np.cumsum([0] + [(a + 1) * b for a, b in model.spec.shapes])
    layer_of = np.searchsorted(starts, indices, side="right") - 1
    for rows, _, layers in _layer_rows(model, theta, x):
        for layer, (augmented, delta) in enumerate(layers):
            mine = np.flatnonzero(layer_of == layer)
            local = indices[mine] - starts[layer]
            fan_out = delta.shape[1]
            columns[rows, mine] = augmented[:, local // fan_out] * delta[:, local % fan_out]
    return columns


def selected_ggn(model: RegressionModel, theta: np.ndarray, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The GGN block over the parameters `indices`: J_Sᵀ J_S / σ² (S × S, exactly symmetric)."""
    block = np.zeros((len(indices), len(indices)), order="F")
    inv_var = model.noise_std ** -2
    with blas_for(len(indices)):
        for rows in row_batches(len(x), len(indices)):
            dense.rank_update(block, selected_jacobian(model, theta, x[rows], indices).T, inv_var, mirror=False)
    return dense.mirror_lower(block)
