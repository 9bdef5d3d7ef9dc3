"""Subnetwork Laplace: a full GGN over the S weights of largest marginal variance, a diagonal for the rest.

The S weights are those with the largest variance 1/(diag GGN + α) under the diagonal Laplace
(Daxberger et al., 2021): the ones the data determine least, whose correlations matter most for the
predictive. Λ is block-diagonal after a permutation: a dense S × S block (the GGN restricted to the
subnetwork, exactly) and the diagonal GGN of the other P − S weights. With S = P it is the full GGN.

What is approximate: the correlations between the subnetwork and the rest, and among the rest, are
dropped. Forgetting is exact with respect to the structure: the forgotten records' GGN over the same
S weights (a rank-|D_f| Woodbury downdate of the block) and their diagonal for the rest, so the result
equals this structure fitted on the retained records with the same S. The S weights are chosen once,
on the full data, and kept: re-choosing them after a deletion would change the structure. So which
weights are in the block still depends (weakly) on the forgotten records, and a retrain from scratch,
which chooses its own on D_r, may differ by a few weights from the unlearned posterior's.

Memory: S² + P numbers (S = 2,000 at P = 1M: 40 MB), and no P × P matrix anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayesunlearn.posteriors.matrices import Curvature, Diagonal, GaussianMatrix, Update, matrix_from_arrays

PREFIX = "subnetwork_"  # of the arrays a posterior file holds for this structure


@dataclass(frozen=True)
class SubnetworkCurvature:
    """Records' curvature in this structure: the GGN block over the subnetwork (or its factor J_Sᵀ/σ, rank
    = records) and the diagonal GGN over all P weights."""

    indices: np.ndarray
    diagonal: np.ndarray
    block: np.ndarray | None = None
    factor: np.ndarray | None = None

    def plus(self, other: SubnetworkCurvature) -> SubnetworkCurvature:
        """The sum over both sets of records (blocks, not factors: shards of a fit)."""
        return SubnetworkCurvature(self.indices, self.diagonal + other.diagonal, self.block + other.block)

    def apply(self, v: np.ndarray) -> np.ndarray:
        out = self.diagonal * v
        inside = v[self.indices]
        out[self.indices] = (self.factor @ (self.factor.T @ inside) if self.factor is not None
                             else self.block @ inside)
        return out


# Precisions within this relative distance of the cut count as tied. A diagonal summed over shards (or over
# other row batches) differs from the one-process sum by rounding, a few ulps times the records at worst
# (1e-12 at 10k records); two weights whose exact precisions tie can then swap order between the two sums
# and change which weight enters the block. The band absorbs that, so both pick the same weights unless a
# precision lies within rounding of the band's edge, 1e-9 from the cut.
TIE_TOLERANCE = 1e-9


def choose(diagonal: np.ndarray, prior_precision: float, size: int) -> np.ndarray:
    """The `size` weights of largest marginal variance 1/(diag + α) under the diagonal Laplace, in
    ascending order. Weights whose precisions lie within `TIE_TOLERANCE` (relative) of the cut, the
    `size`-th smallest precision, are tied and go to the lower indices: the choice is the same on every
    machine and for every sharding of the sum."""
    precision = diagonal + prior_precision
    if size >= len(precision):
        return np.arange(len(precision), dtype=np.int64)
    cut = np.partition(precision, size - 1)[size - 1]
    band = TIE_TOLERANCE * abs(cut)
    below = np.flatnonzero(precision < cut - band)  # fewer than `size`: all are below the cut
    tied = np.flatnonzero(np.abs(precision - cut) <= band)  # ascending indices
    return np.sort(np.concatenate([below, tied[: size - len(below)]])).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Subnetwork(GaussianMatrix):
    indices: np.ndarray        # the subnetwork's weights, ascending (S,)
    block: GaussianMatrix      # dense Λ (with Σ) or Σ alone over them
    rest: Diagonal             # the other weights' diagonal precision (P − S,)
    complement: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        mask = np.ones(self.block.size + self.rest.size, dtype=bool)
        mask[self.indices] = False
        object.__setattr__(self, "complement", np.flatnonzero(mask))

    @property
    def size(self) -> int:
        return self.block.size + self.rest.size

    def _assemble(self, inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
        out = np.zeros((self.size, self.size))
        out[np.ix_(self.indices, self.indices)] = inside
        out[self.complement, self.complement] = outside
        return out

    def eigenvalues(self) -> np.ndarray:
        return np.concatenate([self.block.eigenvalues(), self.rest.values])

    def precision(self) -> np.ndarray:
        return self._assemble(self.block.precision(), self.rest.values)

    def covariance(self) -> np.ndarray:
        return self._assemble(self.block.covariance(), 1.0 / self.rest.values)

    def variance(self, jac: np.ndarray) -> np.ndarray:
        return self.block.variance(jac[:, self.indices]) + self.rest.variance(jac[:, self.complement])

    def solve(self, v: np.ndarray) -> np.ndarray:
        out = np.empty(self.size)
        out[self.indices], out[self.complement] = self.block.solve(v[self.indices]), self.rest.solve(v[self.complement])
        return out

    def copy(self) -> Subnetwork:
        return Subnetwork(self.indices.copy(), self.block.copy(), self.rest.copy())

    def add(self, curvature, sign, rhs, floor, options, in_place=False) -> Update:
        """The block by the dense types' algebra (Woodbury for a few records), the rest as a diagonal."""
        records: SubnetworkCurvature = curvature.structured
        inside = Curvature(curvature.gradient[self.indices], matrix=records.block, factor=records.factor)
        outside = Curvature(curvature.gradient[self.complement], matrix=records.diagonal[self.complement])
        block = self.block.add(inside, sign, rhs[self.indices], floor, options, in_place)
        rest = (self.rest.add(outside, sign, rhs[self.complement], floor, options) if self.rest.size
                else Update(self.rest, np.zeros(0), float("inf"), 0, "none", 0.0, "diagonal"))  # S = P
        step = np.empty(self.size)
        step[self.indices], step[self.complement] = block.step, rest.step
        repairs = sorted({block.repair, rest.repair} - {"none"})
        # the block's count is −1 only on the Woodbury path, whose check proved the block positive definite
        n_negative = max(block.n_negative, 0) + rest.n_negative
        if np.isnan(block.min_eig):  # the block's smallest eigenvalue is positive but not computed
            min_eig = rest.min_eig if rest.n_negative else float("nan")
        else:
            min_eig = min(block.min_eig, rest.min_eig)
        return Update(Subnetwork(self.indices, block.matrix, rest.matrix), step, min_eig, n_negative,
                      "+".join(repairs) or "none", max(block.damping, rest.damping), f"subnetwork {block.solver}")

    def extra_arrays(self) -> dict[str, np.ndarray]:
        out = {f"{PREFIX}indices": self.indices, f"{PREFIX}rest": self.rest.values}
        if self.block.stored_precision is not None:
            out[f"{PREFIX}precision"] = self.block.stored_precision
        if self.block.stored_covariance is not None:
            out[f"{PREFIX}covariance"] = self.block.stored_covariance
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Subnetwork:
        block = {name: arrays[f"{PREFIX}{name}"] for name in ("precision", "covariance") if f"{PREFIX}{name}" in arrays}
        return cls(arrays[f"{PREFIX}indices"].astype(np.int64), matrix_from_arrays(block, 0.0),
                   Diagonal(arrays[f"{PREFIX}rest"]))
