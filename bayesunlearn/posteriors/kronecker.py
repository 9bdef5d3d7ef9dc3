"""KFAC: a Gaussian whose precision is block-diagonal over layers, each block A_l ⊗ G_l / n + αI.

A_l and G_l are sums over the n records (model/curvature.py, KroneckerFactors).
What is approximate, and what is not:
- KFAC itself: the GGN block of a layer, Σ_i (ã_i ã_iᵀ) ⊗ (w_i δ_i δ_iᵀ), w_i the likelihood's output
  Hessian (1/σ² or p_i(1 − p_i)), is replaced by the product of
  the sums over n, and the blocks between layers are dropped.
- Forgetting is exact with respect to KFAC: subtracting the forgotten records' sums (and their count)
  gives the factors a fit on the retained records at the same θ* gives, to rounding. So Λ_r is the KFAC
  of D_r, not Λ minus a KFAC of D_f (a product of sums does not split over records), and forgetting A
  then B equals forgetting A ∪ B.
- The mean moves by the Newton step of the retained objective under this precision.

Each factor is kept with its eigendecomposition, so Λ's eigenvalues are α + a_i g_j / n and a solve,
the predictive variance and the evidence never form a P × P matrix: at a 1000 × 1000 layer the
factors take 16 MB where a dense Σ takes 8 TB.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg

from bayesunlearn.errors import NotPositiveDefinite
from bayesunlearn.model.curvature import KroneckerFactors
from bayesunlearn.posteriors.matrices import GaussianMatrix, Update

PREFIX = "kronecker_"  # of the arrays a posterior file holds for this structure


@dataclass(frozen=True)
class _Eigen:
    """One layer's block in its eigenbasis: Λ_l = (Q_A ⊗ Q_G) diag(values) (Q_A ⊗ Q_G)ᵀ."""

    left: np.ndarray          # Q_A, (fan_in + 1, fan_in + 1)
    right: np.ndarray         # Q_G, (fan_out, fan_out)
    left_values: np.ndarray   # eigenvalues a_i of A
    right_values: np.ndarray  # eigenvalues g_j of G
    values: np.ndarray        # α + a_i g_j / n, (fan_in + 1, fan_out)


@dataclass(frozen=True, eq=False)
class Kronecker(GaussianMatrix):
    inputs: tuple[np.ndarray, ...]         # A_l
    sensitivities: tuple[np.ndarray, ...]  # G_l
    count: int                             # n, the records the factors sum over
    prior_precision: float                 # α

    @classmethod
    def of(cls, factors: KroneckerFactors, prior_precision: float) -> Kronecker:
        return cls(factors.inputs, factors.sensitivities, factors.count, prior_precision)

    @property
    def _scale(self) -> float:
        return 1.0 / self.count if self.count else 0.0  # no records left: the prior alone

    @cached_property
    def _eigen(self) -> tuple[_Eigen, ...]:
        out = []
        for a, g in zip(self.inputs, self.sensitivities, strict=True):
            a_values, left = scipy.linalg.eigh(a)
            g_values, right = scipy.linalg.eigh(g)
            out.append(_Eigen(left, right, a_values, g_values,
                              self.prior_precision + self._scale * np.outer(a_values, g_values)))
        return tuple(out)

    def _blocks(self, v: np.ndarray):
        """The layers' parts of a vector (or of the columns of a matrix (n, P)), each as (…, fan_in+1, fan_out)."""
        offset = 0
        for a, g in zip(self.inputs, self.sensitivities, strict=True):
            size = len(a) * len(g)
            yield v[..., offset: offset + size].reshape(*v.shape[:-1], len(a), len(g))
            offset += size

    @property
    def size(self) -> int:
        return sum(len(a) * len(g) for a, g in zip(self.inputs, self.sensitivities, strict=True))

    def eigenvalues(self) -> np.ndarray:
        return np.concatenate([layer.values.ravel() for layer in self._eigen])

    def precision(self) -> np.ndarray:
        return scipy.linalg.block_diag(*[self._scale * np.kron(a, g) + self.prior_precision * np.eye(a.size * len(g)
                                         // len(a)) for a, g in zip(self.inputs, self.sensitivities, strict=True)])

    def covariance(self) -> np.ndarray:
        blocks = []
        for layer in self._eigen:
            basis = np.kron(layer.left, layer.right)
            blocks.append((basis / layer.values.ravel()) @ basis.T)
        return scipy.linalg.block_diag(*blocks)

    def apply(self, v: np.ndarray) -> np.ndarray:
        """Λ v, from the factors: (A ⊗ G) vec(V) = vec(A V G) for row-major vec."""
        return np.concatenate([(self._scale * (a @ block @ g) + self.prior_precision * block).ravel()
                               for a, g, block in zip(self.inputs, self.sensitivities, self._blocks(v), strict=True)])

    def solve(self, v: np.ndarray) -> np.ndarray:
        """Λ⁻¹ v, in each layer's eigenbasis."""
        return np.concatenate([(layer.left @ ((layer.left.T @ block @ layer.right) / layer.values) @ layer.right.T
                                ).ravel() for layer, block in zip(self._eigen, self._blocks(v), strict=True)])

    def variance(self, jac: np.ndarray) -> np.ndarray:
        total = np.zeros(len(jac))
        for layer, block in zip(self._eigen, self._blocks(jac), strict=True):
            rotated = layer.left.T @ block @ layer.right  # (n, fan_in+1, fan_out)
            total += np.sum(rotated * rotated / layer.values, axis=(1, 2))
        return total

    def copy(self) -> Kronecker:
        return Kronecker(tuple(a.copy() for a in self.inputs), tuple(g.copy() for g in self.sensitivities),
                         self.count, self.prior_precision)

    def plus(self, factors: KroneckerFactors, sign: float) -> Kronecker:
        """The KFAC of these records with `factors`' records added (sign +1) or removed (sign −1)."""
        count = self.count + int(sign) * factors.count
        if count < 0:
            raise NotPositiveDefinite(f"cannot remove {factors.count} records from factors over {self.count}")
        return Kronecker(tuple(a + sign * b for a, b in zip(self.inputs, factors.inputs, strict=True)),
                         tuple(g + sign * h for g, h in zip(self.sensitivities, factors.sensitivities, strict=True)),
                         count, self.prior_precision)

    def retuned(self, data_scale: float, prior_precision: float) -> Kronecker:
        """The same factors for a noise σ' (G scales by σ²/σ'² = data_scale) and prior precision α'."""
        return Kronecker(self.inputs, tuple(g * data_scale for g in self.sensitivities), self.count, prior_precision)

    def add(self, curvature, sign, rhs, floor, options, in_place=False) -> Update:
        """Λ ± the records' curvature: their factors added to or removed from A and G.

        A and G of any set of records are positive semi-definite, so a factor eigenvalue below rounding
        (relative to the factor before the update) means records were removed that the fit never held:
        `refuse` raises, `clip` floors the factors' eigenvalues at zero, `damp` lifts each such factor's
        eigenvalues by its most negative one. Λ = A ⊗ G / n + αI is then ≥ αI."""
        updated = self.plus(curvature.structured, sign)
        min_eig = float(updated.eigenvalues().min())
        negative, damping, repaired = 0, 0.0, {}
        layers = ([(layer.left, layer.left_values) for layer in updated._eigen]
                  + [(layer.right, layer.right_values) for layer in updated._eigen])
        for number, (before, (vectors, values)) in enumerate(zip((*self.inputs, *self.sensitivities), layers,
                                                                 strict=True)):
            below = values < -1e-9 * max(1.0, float(np.abs(before).max()))
            if not below.any():
                continue
            negative += int(below.sum())
            shift = -float(values.min())
            damping = max(damping, shift)
            lifted = np.maximum(values, 0.0) if options.repair == "clip" else values + shift
            repaired[number] = (vectors * lifted) @ vectors.T
        repair = "none"
        if negative:
            if options.repair == "refuse":
                raise NotPositiveDefinite(
                    f"after forgetting these records the Kronecker factors have {negative} negative eigenvalues "
                    f"(down to {-damping:.3g}): the records were not all in the fit. Choose repair 'clip' or "
                    "'damp', or fall back to retraining.")
            fixed = [repaired.get(number, factor)
                     for number, factor in enumerate((*updated.inputs, *updated.sensitivities))]
            half = len(self.inputs)
            updated = Kronecker(tuple(fixed[:half]), tuple(fixed[half:]), updated.count, self.prior_precision)
            repair = options.repair
        return Update(updated, updated.solve(rhs), min_eig, negative, repair,
                      damping if repair == "damp" else 0.0, "kronecker")

    def extra_arrays(self) -> dict[str, np.ndarray]:
        out = {f"{PREFIX}count": np.array([self.count], dtype=np.int64)}
        for number, (a, g) in enumerate(zip(self.inputs, self.sensitivities, strict=True)):
            out[f"{PREFIX}inputs_{number}"], out[f"{PREFIX}sensitivities_{number}"] = a, g
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prior_precision: float) -> Kronecker:
        layers = sum(1 for name in arrays if name.startswith(f"{PREFIX}inputs_"))
        return cls(tuple(arrays[f"{PREFIX}inputs_{n}"] for n in range(layers)),
                   tuple(arrays[f"{PREFIX}sensitivities_{n}"] for n in range(layers)),
                   int(arrays[f"{PREFIX}count"][0]), prior_precision)
