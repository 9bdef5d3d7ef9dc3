"""Curvature of the data term, in NumPy: the GGN (whole, a block, or its diagonal) and NLL gradients.

The GGN of the data term is Σ_i w_i J_iᵀJ_i, where J_i = ∂f(x_i, θ)/∂θ (model/network.py) and
w_i = ∂²ℓ/∂f² is the likelihood's output Hessian: 1/σ² (Gaussian), p_i(1 − p_i) (Bernoulli) or the
K × K block diag(p_i) − p_ip_iᵀ over a record's K output rows (categorical; `RegressionModel.weigh`).
The NLL gradient is Σ_i J_iᵀ ∂ℓ/∂f_i. The exact Hessian, which needs
second derivatives, is model/autodiff.py's.

J is (n, P): at 10k parameters and n = 50k that is 4 GB. Above `JACOBIAN_BUDGET`
entries the sums run over row batches (the full GGN with an in-place SYRK:
half a GEMM's flops), so memory is one batch of J plus the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from bayesunlearn.io.progress import PATIENCE, progress
from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.model.network import (inputs_and_pullbacks, inputs_and_sensitivities, outputs,
                                        outputs_and_features, outputs_and_jacobians, outputs_factor_rows_and_vjp)
from bayesunlearn.numerics import dense
from bayesunlearn.numerics.threads import blas_for

JACOBIAN_BUDGET = 2**21  # float64 entries of J per batch: 16 MB


def row_batches(n: int, n_params: int) -> list[slice]:
    """Record slices whose Jacobians fit `JACOBIAN_BUDGET`, `n_params` entries per record (its K output rows
    times P); one slice when the whole J does."""
    size = max(1, JACOBIAN_BUDGET // max(1, n_params))
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _layer_batches(model: RegressionModel, n: int) -> list[slice]:
    """The record batches of the layer-wise sums: a record's K output rows of every layer's inputs and
    sensitivities (the factors of its Jacobian rows) fit `JACOBIAN_BUDGET`."""
    return row_batches(n, sum(a + b + 1 for a, b in model.spec.shapes) * model.spec.outputs)


def _counted(batches: list[slice], what: str) -> Iterable[slice]:
    """The batches, counted on stderr once the sum has run `PATIENCE` seconds (a large table); one batch is
    not counted."""
    return batches if len(batches) == 1 else progress(batches, desc=what, unit="batch", delay=PATIENCE)


def data_curvature(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """GGN H = Σ_i w_i J_iᵀJ_i and NLL gradient g = Jᵀ ∂ℓ/∂f, summed over the given records (H exactly
    symmetric)."""
    p = model.spec.n_params
    hessian, gradient = np.zeros((p, p), order="F"), np.zeros(p)
    with blas_for(p):
        for rows in _counted(row_batches(len(x), p * model.spec.outputs), "GGN over records"):
            if model.categorical:  # the K − 1 rows B_iJ_i per record, from the backward passes (_layer_terms)
                _, weighted, records_gradient = outputs_factor_rows_and_vjp(model.spec, theta, x[rows],
                                                                            _seeds(model, y[rows]))
                dense.rank_update(hessian, weighted.T, 1.0, mirror=False)
                gradient += records_gradient
                continue
            f, jac = outputs_and_jacobians(model.spec, theta, x[rows])
            weighted, scale = model.weigh(jac, f)
            dense.rank_update(hessian, weighted.T, scale, mirror=False)
            gradient += model.error_scale * (jac.T @ model.error(f, y[rows]))
    return dense.mirror_lower(hessian), gradient


def restricted_ggn(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray, index: slice,
                   diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
    """The GGN over the parameters in `index` — its diagonal, or the dense block — and the NLL gradient
    there, accumulated over row batches. For the output layer the block is exact: the network's output
    is linear in it; its Jacobian columns are formed alone (`_output_layer_rows`), not cut from the whole J."""
    size = len(range(*index.indices(model.spec.n_params)))
    total = (np.zeros(size) if diagonal else np.zeros((size, size)), np.zeros(size))
    p = model.spec.n_params
    output_layer = index.indices(p)[:2] == (p - model.spec.n_last_layer, p) and index.step in (None, 1)
    if output_layer and model.categorical:
        return _output_layer_block(model, theta, x, y, diagonal)
    jacobians = _output_layer_rows(model, theta, x) if output_layer else _jacobian_columns(model, theta, x, index)
    for number, (rows, f, jac) in enumerate(jacobians):
        grad = model.error_scale * (jac.T @ model.error(f, y[rows]))
        jac, scale = model.weigh(jac, f)
        block = scale * np.einsum("ij,ij->j", jac, jac) if diagonal else scale * (jac.T @ jac)
        total = (block, grad) if number == 0 else (total[0] + block, total[1] + grad)
    return total


def _jacobian_columns(model: RegressionModel, theta: np.ndarray, x: np.ndarray, index: slice):
    """Per row batch: f and J[:, index], cut from the whole J of the batch."""
    for rows in _counted(row_batches(len(x), model.spec.n_params * model.spec.outputs), "GGN block over records"):
        f, jac = outputs_and_jacobians(model.spec, theta, x[rows])
        yield rows, f, jac[:, index]


def _output_layer_rows(model: RegressionModel, theta: np.ndarray, x: np.ndarray):
    """Per row batch (`_output_layer_inputs`): f and the output layer's Jacobian rows: a record's row o is
    ã ⊗ e_o (ã its last hidden layer's outputs and a 1, e_o the o-th of K unit vectors: the output's
    sensitivity to its own pre-activations), the same numbers as J's columns there, from a forward pass alone."""
    k = model.spec.outputs
    for rows, f, features in _output_layer_inputs(model, theta, x):
        augmented = _augment(features)
        yield rows, f, (augmented[:, None, :, None] * np.eye(k)[None, :, None, :]).reshape(len(f), -1)


def _output_layer_block(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray, diagonal: bool
                        ) -> tuple[np.ndarray, np.ndarray]:
    """A K-class network's output-layer block (or its diagonal) and gradient from its inputs ã alone: the
    block is Σ_i (ã_i ã_iᵀ) ⊗ W_i (θ holds the layer row-major, ã's entry j and output o at j·K + o), the
    gradient Σ_i ã_i ⊗ e_i. Per pair of outputs o ≤ o', Σ_i W_i,oo' ã_i ã_iᵀ is ± one Gram product of the ã
    scaled by √|W_i,oo'| (W_i's diagonal is ≥ 0 and the rest ≤ 0): K(K+1)/2 products of d × d over the
    records in place of one of dK × dK over their K output rows (d = fan_in + 1)."""
    k, d = model.spec.outputs, model.spec.layer_sizes[-2] + 1
    pairs = [(o, q) for o in range(k) for q in range(o, k) if not diagonal or o == q]
    sums = {pair: np.zeros(d if diagonal else (d, d)) for pair in pairs}
    gradient = np.zeros((d, k))
    for rows, f, features in _output_layer_inputs(model, theta, x):
        augmented, hessians = _augment(features), model.output_hessians(f)
        gradient += augmented.T @ (model.error_scale * model.error(f, y[rows])).reshape(-1, k)
        for o, q in pairs:
            weight = hessians[:, o, q]
            if diagonal:
                sums[o, q] += (augmented * augmented).T @ weight
                continue
            scaled = augmented * np.sqrt(np.abs(weight))[:, None]
            sums[o, q] += (1.0 if o == q else -1.0) * (scaled.T @ scaled)
    if diagonal:
        return np.column_stack([sums[o, o] for o in range(k)]).ravel(), gradient.ravel()
    block = np.empty((d, k, d, k))
    for (o, q), part in sums.items():
        block[:, o, :, q] = block[:, q, :, o] = part
    return block.reshape(d * k, d * k), gradient.ravel()


def _output_layer_inputs(model: RegressionModel, theta: np.ndarray, x: np.ndarray):
    """Per row batch (`_layer_batches`): f and the last hidden layer's outputs, by a forward pass."""
    for rows in _counted(_layer_batches(model, len(x)), "GGN block over records"):
        yield rows, *outputs_and_features(model.spec, theta, x[rows])


def _layer_rows(model: RegressionModel, theta: np.ndarray, x: np.ndarray):
    """Per row batch: f, and per layer each record's ã (inputs with a 1 for the bias; (n, fan_in + 1)) and
    each output row's δ ((n·K, fan_out): a network of K outputs gives each record K consecutive output rows);
    no Jacobian is formed. `rows` are records."""
    for rows in _counted(_layer_batches(model, len(x)), "layer curvature over records"):
        f, layer_inputs, deltas = inputs_and_sensitivities(model.spec, theta, x[rows])
        yield rows, f, [(np.column_stack([h, np.ones(len(h))]), d) for h, d in zip(layer_inputs, deltas, strict=True)]


def _per_record(rows: np.ndarray, k: int) -> np.ndarray:
    """Each record's k consecutive rows summed, (n·k, m) → (n, m): a sum over a record's rows of ã_i ⊗ r_io
    is ã_i ⊗ Σ_o r_io, one product per record instead of k. The rows themselves when k = 1."""
    return rows if k == 1 else rows.reshape(-1, k, rows.shape[1]).sum(axis=1)


@dataclass(frozen=True)
class _LayerTerms:
    """One layer's part of a row batch: the records' ã (inputs and a 1 for the bias), the weighted
    sensitivities R with Σ_o w δδᵀ = scale · Σ_rows r rᵀ per record (`per_record` consecutive rows each),
    and each record's error sensitivities Σ_o (∂ℓ/∂f_io) δ_io (its NLL gradient there is ã_i ⊗ those)."""

    augmented: np.ndarray  # (n, fan_in + 1)
    weighted: np.ndarray   # (n · per_record, fan_out)
    scale: float
    per_record: int
    errors: np.ndarray | None  # (n, fan_out); None when the gradient is not asked for


def _layer_terms(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray, gradient: bool = True):
    """Per row batch (`_layer_batches`): per layer its `_LayerTerms`; no Jacobian is formed. One output:
    δ from one backward pass, weighted by `RegressionModel.weigh`. K outputs: the rows of each record's
    K − 1 × K output factor B_i (`RegressionModel.output_factor`) and its error vector are backpropagated
    as seeds, so R and the errors come out of the backward passes (K rows per record in all, where weighing
    δ's K rows and summing them against the errors costs two more passes over them)."""
    spec, k = model.spec, model.spec.outputs
    for rows in _counted(_layer_batches(model, len(x)), "layer curvature over records"):
        if model.categorical:
            seeds = _seeds(model, y[rows]) if gradient else lambda f: (model.output_factor(f),)
            f, inputs, (weighted, *errors) = inputs_and_pullbacks(spec, theta, x[rows], seeds)
            terms = [_LayerTerms(_augment(h), r, 1.0, k - 1, errors[0][layer] if gradient else None)
                     for layer, (h, r) in enumerate(zip(inputs, weighted, strict=True))]
        else:
            f, inputs, deltas = inputs_and_sensitivities(spec, theta, x[rows])
            residual = model.error_scale * model.error(f, y[rows])
            terms = [_LayerTerms(_augment(h), *model.weigh(d, f), 1, residual[:, None] * d if gradient else None)
                     for h, d in zip(inputs, deltas, strict=True)]
        yield rows, terms


def _seeds(model: RegressionModel, y: np.ndarray):
    """The backward passes' seeds of a K-class network's records: their output factors B_i (n, K − 1, K),
    whose rows weigh the GGN, and their errors ∂ℓ/∂f_i (n, 1, K), whose row gives the NLL gradient."""
    return lambda f: (model.output_factor(f), (model.error_scale * model.error(f, y)).reshape(len(y), 1, -1))


def _augment(h: np.ndarray) -> np.ndarray:
    """A layer's inputs with a 1 for the bias, (n, fan_in + 1)."""
    return np.column_stack([h, np.ones(len(h))])


@dataclass(frozen=True)
class KroneckerFactors:
    """Per layer l the factors of KFAC over `count` records: A_l = Σ_i ã_i ã_iᵀ, with ã_i the layer's input
    and a 1 for the bias, and G_l = Σ_i δ_i δ_iᵀ/σ², with δ_i the output's sensitivity to the layer's
    pre-activations (each weighted by the output Hessian w_i); and the records' NLL gradient. Sums over
    records, so shards add and deletions subtract."""

    inputs: tuple[np.ndarray, ...]        # A_l, (fan_in + 1, fan_in + 1)
    sensitivities: tuple[np.ndarray, ...]  # G_l, (fan_out, fan_out)
    count: int
    gradient: np.ndarray | None  # None when not summed: a fit alone needs none

    def plus(self, other: KroneckerFactors, sign: float = 1.0) -> KroneckerFactors:
        """These records' factors with `other`'s added (sign +1) or removed (sign −1)."""
        return KroneckerFactors(tuple(a + sign * b for a, b in zip(self.inputs, other.inputs, strict=True)),
                                tuple(g + sign * h for g, h in zip(self.sensitivities, other.sensitivities,
                                                                   strict=True)),
                                self.count + int(sign) * other.count, self.gradient + sign * other.gradient)


def kronecker_factors(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray, gradient: bool = True
                      ) -> KroneckerFactors:
    """KFAC's factors and the NLL gradient over the records, accumulated over row batches.

    The GGN block of layer l is Σ_i (ã_i ã_iᵀ) ⊗ (w_i δ_i δ_iᵀ) exactly (θ holds each layer's weights
    row-major and then its bias, so its Jacobian row is ã_i ⊗ δ_i); KFAC replaces this sum of Kronecker
    products by A_l ⊗ G_l / n. That is the approximation; it is exact for one record, and for the output
    layer of a scalar-output network (δ = 1 there) when w_i is the same for every record (Gaussian). With K
    outputs G_l sums over each record's K output rows weighted by its K × K output Hessian."""
    inputs, sensitivities, grads = _factor_sums(model, theta, x, y, gradient)
    return KroneckerFactors(inputs, sensitivities, len(x), _flat(grads) if gradient else None)


def _factor_sums(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray, gradient: bool = True):
    """Per layer A_l, G_l and (when `gradient`) the NLL gradient, (fan_in + 1, fan_out), over row batches."""
    shapes = model.spec.shapes
    inputs = [np.zeros((a + 1, a + 1)) for a, _ in shapes]
    sensitivities = [np.zeros((b, b)) for _, b in shapes]
    grads = [np.zeros((a + 1, b)) for a, b in shapes]
    for _, layers in _layer_terms(model, theta, x, y, gradient):
        for layer, terms in enumerate(layers):
            inputs[layer] += terms.augmented.T @ terms.augmented  # once per record, whatever its number of rows
            sensitivities[layer] += terms.scale * (terms.weighted.T @ terms.weighted)
            if gradient:
                grads[layer] += terms.augmented.T @ terms.errors
    return tuple(inputs), tuple(sensitivities), grads


@dataclass(frozen=True)
class EigenbasisSums:
    """EK-FAC's data term over `count` records at fixed per-layer bases Q_A (`left`) and Q_G (`right`):
    s_l = Σ_i Σ_o ((Q_Aᵀã_i) ⊗ (Q_Gᵀr_io))², r_io the weighted sensitivities of a record's output row (its
    layer Jacobian row projected on the bases, squared), as (fan_in + 1, fan_out) per layer; and the records'
    NLL gradient. Sums over records at fixed bases, so shards add and deletions subtract."""

    left: tuple[np.ndarray, ...]
    right: tuple[np.ndarray, ...]
    sums: tuple[np.ndarray, ...]
    count: int
    gradient: np.ndarray | None  # None when not summed: a fit alone needs none

    def plus(self, other: EigenbasisSums, sign: float = 1.0) -> EigenbasisSums:
        """These records' sums with `other`'s added (sign +1) or removed (sign −1), at the same bases."""
        if not all(np.array_equal(a, b) for a, b in zip((*self.left, *self.right), (*other.left, *other.right),
                                                        strict=True)):
            raise ValueError("EK-FAC sums add only at the same eigenbases")
        return EigenbasisSums(self.left, self.right, tuple(s + sign * t for s, t in zip(self.sums, other.sums,
                                                                                          strict=True)),
                              self.count + int(sign) * other.count, self.gradient + sign * other.gradient)


def eigenbases(factors: KroneckerFactors) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """KFAC's per-layer eigenbases (Q_A of A_l, Q_G of G_l): the bases EK-FAC keeps fixed."""
    return _bases(factors.inputs, factors.sensitivities)


def kfac_eigenbases(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray
                    ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """`eigenbases` of the records' KFAC factors, without summing the NLL gradient no basis depends on."""
    inputs, sensitivities, _ = _factor_sums(model, theta, x, y, gradient=False)
    return _bases(inputs, sensitivities)


def _bases(inputs, sensitivities) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    return tuple(scipy.linalg.eigh(a)[1] for a in inputs), tuple(scipy.linalg.eigh(g)[1] for g in sensitivities)


def eigenbasis_sums(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                    left: tuple[np.ndarray, ...], right: tuple[np.ndarray, ...], gradient: bool = True
                    ) -> EigenbasisSums:
    """EK-FAC's s_l at the bases and (when `gradient`) the NLL gradient: the diagonal of each GGN block in the
    rotated basis (`_squares`), never a P-vector per record."""
    sums, grads = _squares(model, theta, x, y, left, right, gradient)
    return EigenbasisSums(tuple(left), tuple(right), tuple(sums), len(x), _flat(grads) if gradient else None)


def _flat(parts: list[np.ndarray]) -> np.ndarray:
    """Per-layer (fan_in + 1, fan_out) arrays as one vector in θ's order."""
    return np.concatenate([part.ravel() for part in parts])


def diagonal_ggn(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """diag(Σ_i w_i J_iᵀJ_i) and the NLL gradient (`_squares` without a rotation)."""
    diagonal, gradient = _squares(model, theta, x, y)
    return _flat(diagonal), _flat(gradient)


def _squares(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
             left: tuple[np.ndarray, ...] | None = None, right: tuple[np.ndarray, ...] | None = None,
             gradient: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer the diagonal of its GGN block in the basis Q_A ⊗ Q_G (the parameters' own basis when the
    bases are None), (fan_in+1, fan_out), and its NLL gradient. J_i's layer part is ã_i ⊗ r_i (r the
    weighted sensitivities), so its projection is (Q_Aᵀã_i) ⊗ (Q_Gᵀr_i) and its square the outer product of
    the two squares: one (fan_in+1) × fan_out product per layer and batch, never a row of J. A record's K
    output rows share its ã_i: their squares are summed before the product."""
    squares = [np.zeros((a + 1, b)) for a, b in model.spec.shapes]
    grads = [np.zeros((a + 1, b)) for a, b in model.spec.shapes]
    for _, layers in _layer_terms(model, theta, x, y, gradient):
        for layer, terms in enumerate(layers):
            inputs = terms.augmented * terms.augmented if left is None else _squared(terms.augmented @ left[layer])
            sensitivities = (terms.weighted * terms.weighted if right is None
                             else _squared(terms.weighted @ right[layer]))
            squares[layer] += terms.scale * (inputs.T @ _per_record(sensitivities, terms.per_record))
            if gradient:
                grads[layer] += terms.augmented.T @ terms.errors
    return squares, grads


def _squared(projected: np.ndarray) -> np.ndarray:
    """A fresh array's entries squared in its own memory."""
    return np.multiply(projected, projected, out=projected)


def selected_jacobian(model: RegressionModel, theta: np.ndarray, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """J[:, indices] (n·K, S), gathered from each layer's ã and δ without the other P − S columns."""
    k = model.spec.outputs
    columns = np.empty((len(x) * k, len(indices)))
    starts = np.cumsum([0] + [(a + 1) * b for a, b in model.spec.shapes])
    layer_of = np.searchsorted(starts, indices, side="right") - 1
    for records, _, layers in _layer_rows(model, theta, x):
        rows = slice(records.start * k, records.stop * k)
        for layer, (augmented, delta) in enumerate(layers):
            mine = np.flatnonzero(layer_of == layer)
            local = indices[mine] - starts[layer]
            fan_out = delta.shape[1]
            columns[rows, mine] = np.repeat(augmented[:, local // fan_out], k, axis=0) * delta[:, local % fan_out]
    return columns


def selected_ggn(model: RegressionModel, theta: np.ndarray, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The GGN block over the parameters `indices`: Σ_i J_iSᵀ W_i J_iS (S × S, exactly symmetric)."""
    block = np.zeros((len(indices), len(indices)), order="F")
    with blas_for(len(indices)):
        for rows in _counted(row_batches(len(x), len(indices) * model.spec.outputs), "GGN block over records"):
            weighted, scale = selected_factor(model, theta, x[rows], indices)
            dense.rank_update(block, weighted, scale, mirror=False)
    return dense.mirror_lower(block)


def selected_factor(model: RegressionModel, theta: np.ndarray, x: np.ndarray, indices: np.ndarray
                    ) -> tuple[np.ndarray, float]:
    """(F, s) with s·F Fᵀ the records' GGN over `indices`: F = (W^½ J_S)ᵀ (S × n·K)."""
    f = None if model.gaussian else outputs(model.spec, theta, x)
    weighted, scale = model.weigh(selected_jacobian(model, theta, x, indices), f)
    return weighted.T, scale
