"""The posterior kinds: one table of what each kind is, read by settings, fitting, storage and unlearning.

TensorFlow-free, so that light tools (settings checks, the gate, the audit CLI)
can name and check kinds without importing the numerics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Kind:
    """What a posterior kind is: how it is fitted, which parameters it covers, how its matrix is stored."""

    name: str
    family: Literal["laplace", "vi"]
    curvature: Literal["ggn", "hessian"]    # the data curvature its precision (and H_f) is made of
    covers: Literal["all", "last_layer"]    # the parameters the Gaussian is over; the rest stay at θ*
    storage: Literal["dense", "diagonal", "kronecker", "ekfac", "subnetwork"]  # precision (or covariance) as a
                                            # matrix, its diagonal, KFAC's per-layer factors, EK-FAC's bases and
                                            # eigenvalues, or a block plus a diagonal
    start: str | None = None                # VI: the Laplace kind its fit starts from and is whitened by
    vi_family: Literal["mean_field", "full"] | None = None
    covariance_form: bool = False           # large fits keep Σ only (positive definite by construction)

    def index(self, spec) -> slice:
        """The parameters of a network (an MLPSpec) the Gaussian covers: all, or the output layer at the end."""
        if self.covers == "last_layer":
            return slice(spec.n_params - spec.n_last_layer, spec.n_params)
        return slice(0, spec.n_params)


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("full_ggn", "laplace", "ggn", "all", "dense", covariance_form=True),
    Kind("full_hessian", "laplace", "hessian", "all", "dense"),
    Kind("diag_ggn", "laplace", "ggn", "all", "diagonal"),
    Kind("last_layer", "laplace", "ggn", "last_layer", "dense"),
    Kind("kfac", "laplace", "ggn", "all", "kronecker"),
    Kind("ekfac", "laplace", "ggn", "all", "ekfac"),
    Kind("subnetwork", "laplace", "ggn", "all", "subnetwork", covariance_form=True),
    Kind("vi_mean_field", "vi", "ggn", "all", "diagonal", start="diag_ggn", vi_family="mean_field"),
    Kind("vi_full", "vi", "ggn", "all", "dense", start="full_ggn", vi_family="full"),
)}

KindName = Literal["full_ggn", "full_hessian", "diag_ggn", "last_layer", "kfac", "ekfac", "subnetwork",
                   "vi_mean_field", "vi_full"]
VIKindName = Literal["vi_mean_field", "vi_full"]
LAPLACE_KINDS = tuple(name for name, kind in KINDS.items() if kind.family == "laplace")
VI_KINDS = tuple(name for name, kind in KINDS.items() if kind.family == "vi")
