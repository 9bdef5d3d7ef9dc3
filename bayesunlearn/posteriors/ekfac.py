"""EK-FAC (George et al., 2018): KFAC's eigenbases with the eigenvalues refitted to the data.

Per layer l, Λ_l = (Q_A ⊗ Q_G) diag(s_l + α) (Q_A ⊗ Q_G)ᵀ, with Q_A, Q_G the eigenbases of KFAC's
factors A_l, G_l (model/curvature.py) and s_l the records' own second moments in that basis:
s_l = Σ_i Σ_o ((Q_A ⊗ Q_G)ᵀ g_io)², g_io = ã_i ⊗ r_io the layer Jacobian row of record i's output
row o (weighted by the output Hessian). Blocks between layers are dropped, as in KFAC.

What is approximate, and what is not:
- In a fixed basis, s_l is the diagonal of the exact GGN block rotated into it: the best diagonal there
  (closest in Frobenius norm, KFAC's Kronecker eigenvalues being one other diagonal). Where the basis
  diagonalises the GGN block (one record; the output layer of a scalar Gaussian network; a Gaussian
  network without hidden layers) the block is exact.
- The bases are chosen once, from the fit's records, and kept: forgetting subtracts the forgotten
  records' s-contributions (and count), so Λ_r equals this structure fitted on the retained records at
  the same bases, to rounding, and forgetting A then B equals forgetting A ∪ B. Re-choosing the bases
  after a deletion would change the structure; which bases are kept still depends (weakly) on the
  forgotten records.
- The mean moves by the Newton step of the retained objective under this precision.

Memory: per layer the two bases and s, (fan_in+1)² + fan_out² + (fan_in+1)·fan_out numbers; a solve,
the predictive variance and the evidence never form a P × P matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from bayesunlearn.errors import NotPositiveDefinite
from bayesunlearn.model.curvature import EigenbasisSums
from bayesunlearn.posteriors.matrices import GaussianMatrix, Update

PREFIX = "ekfac_"  # of the arrays a posterior file holds for this structure


@dataclass(frozen=True, eq=False)
class EigenKronecker(GaussianMatrix):
    left: tuple[np.ndarray, ...]   # Q_A per layer, (fan_in + 1, fan_in + 1)
    right: tuple[np.ndarray, ...]  # Q_G per layer, (fan_out, fan_out)
    sums: tuple[np.ndarray, ...]   # s_l, (fan_in + 1, fan_out): the data's eigenvalues in the basis
    count: int                     # n, the records the sums are over
    prior_precision: float         # α

    @classmethod
    def of(cls, data: EigenbasisSums, prior_precision: float) -> EigenKronecker:
        return cls(data.left, data.right, data.sums, data.count, prior_precision)

    def _values(self):
        return (s + self.prior_precision for s in self.sums)

    def _blocks(self, v: np.ndarray):
        """The layers' parts of a vector (or of the rows of a matrix (n, P)), each as (…, fan_in+1, fan_out)."""
        offset = 0
        for s in self.sums:
            yield v[..., offset: offset + s.size].reshape(*v.shape[:-1], *s.shape)
            offset += s.size

    def _rotated(self, v: np.ndarray, scale) -> np.ndarray:
        """Per layer Q_A ((Q_Aᵀ V Q_G) ∘ scale) Q_Gᵀ = (Q_A ⊗ Q_G) diag(scale) (Q_A ⊗ Q_G)ᵀ v (row-major vec)."""
        return np.concatenate([(left @ ((left.T @ block @ right) * factor) @ right.T).ravel() for left, right, factor,
                               block in zip(self.left, self.right, scale, self._blocks(v), strict=True)])

    @property
    def size(self) -> int:
        return sum(s.size for s in self.sums)

    def eigenvalues(self) -> np.ndarray:
        return np.concatenate([values.ravel() for values in self._values()])

    def _dense(self, power: float) -> np.ndarray:
        blocks = []
        for left, right, values in zip(self.left, self.right, self._values(), strict=True):
            basis = np.kron(left, right)
            blocks.append((basis * values.ravel() ** power) @ basis.T)
        return scipy.linalg.block_diag(*blocks)

    def precision(self) -> np.ndarray:
        return self._dense(1.0)

    def covariance(self) -> np.ndarray:
        return self._dense(-1.0)

    def apply(self, v: np.ndarray) -> np.ndarray:
        """Λ v."""
        return self._rotated(v, self._values())

    def solve(self, v: np.ndarray) -> np.ndarray:
        """Λ⁻¹ v, in each layer's eigenbasis."""
        return self._rotated(v, (1.0 / values for values in self._values()))

    def variance(self, jac: np.ndarray) -> np.ndarray:
        total = np.zeros(len(jac))
        for left, right, values, block in zip(self.left, self.right, self._values(), self._blocks(jac), strict=True):
            rotated = left.T @ block @ right  # (n, fan_in+1, fan_out)
            total += np.sum(rotated * rotated / values, axis=(1, 2))
        return total

    def copy(self) -> EigenKronecker:
        return EigenKronecker(self.left, self.right, tuple(s.copy() for s in self.sums), self.count,
                              self.prior_precision)

    def data(self) -> EigenbasisSums:
        """The records' sums this precision holds (without a gradient)."""
        return EigenbasisSums(self.left, self.right, self.sums, self.count, np.zeros(self.size))

    def plus(self, records: EigenbasisSums, sign: float) -> EigenKronecker:
        """These records' EK-FAC with `records` added (sign +1) or removed (sign −1), at the same bases."""
        count = self.count + int(sign) * records.count
        if count < 0:
            raise NotPositiveDefinite(f"cannot remove {records.count} records from sums over {self.count}")
        return EigenKronecker.of(self.data().plus(records, sign), self.prior_precision)

    def retuned(self, data_scale: float, prior_precision: float) -> EigenKronecker:
        """The same sums for a noise σ' (they scale by σ²/σ'² = data_scale) and prior precision α'."""
        return EigenKronecker(self.left, self.right, tuple(s * data_scale for s in self.sums), self.count,
                              prior_precision)

    def add(self, curvature, sign, rhs, floor, options, in_place=False) -> Update:
        """Λ ± the records' curvature: their sums added to or removed from s.

        s of any set of records is a sum of squares, so an entry below rounding (relative to the layer's s
        before the update) means records were removed that the fit never held: `refuse` raises, `clip`
        floors such entries at zero, `damp` lifts the layer's s by its most negative entry. Λ is then ≥ αI."""
        updated = self.plus(curvature.structured, sign)
        min_eig = float(updated.eigenvalues().min())
        negative, damping, sums = 0, 0.0, []
        for before, after in zip(self.sums, updated.sums, strict=True):
            below = after < -1e-9 * max(1.0, float(np.abs(before).max()))
            negative += int(below.sum())
            shift = -float(after.min()) if below.any() else 0.0
            damping = max(damping, shift)
            sums.append(after if not below.any() else np.maximum(after, 0.0) if options.repair == "clip"
                        else after + shift)
        repair = "none"
        if negative:
            if options.repair == "refuse":
                raise NotPositiveDefinite(
                    f"after forgetting these records EK-FAC has {negative} negative eigenvalue sums (down to "
                    f"{-damping:.3g}): the records were not all in the fit. Choose repair 'clip' or 'damp', or "
                    "fall back to retraining.")
            updated = EigenKronecker(self.left, self.right, tuple(sums), updated.count, self.prior_precision)
            repair = options.repair
        return Update(updated, updated.solve(rhs), min_eig, negative, repair,
                      damping if repair == "damp" else 0.0, "ekfac")

    def extra_arrays(self) -> dict[str, np.ndarray]:
        out = {f"{PREFIX}count": np.array([self.count], dtype=np.int64)}
        for number, (left, right, s) in enumerate(zip(self.left, self.right, self.sums, strict=True)):
            out[f"{PREFIX}left_{number}"], out[f"{PREFIX}right_{number}"] = left, right
            out[f"{PREFIX}sums_{number}"] = s
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prior_precision: float) -> EigenKronecker:
        layers = sum(1 for name in arrays if name.startswith(f"{PREFIX}sums_"))
        return cls(*(tuple(arrays[f"{PREFIX}{part}_{n}"] for n in range(layers)) for part in ("left", "right", "sums")),
                   int(arrays[f"{PREFIX}count"][0]), prior_precision)
