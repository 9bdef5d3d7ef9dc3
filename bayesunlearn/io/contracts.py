"""The files that stages, flows and the audit hand to each other, as typed records.

Each file has one model here and is written and read only through it, so no
reader picks keys by string, and a damaged or hand-edited file is a clear error
that names it. The production chain (the stages the served posterior needs) is
defined here once; dvc.yaml agrees with it (tests/test_lineage_deps.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bayesunlearn.io import atomic
from bayesunlearn.errors import UserError

SPLIT_SUMMARY = Path("data/split/summary.json")
GATE_REPORT = Path("metrics/gate.json")
PROVENANCE = Path("models/served/provenance.json")
HEADLINE = Path("metrics/headline.json")
TRAIN_REPORT = Path("metrics/train.json")
RETRAIN_REPORT = Path("metrics/retrain.json")
PRIVACY_REPORT = Path("metrics/privacy.json")

T = TypeVar("T", bound="Contract")


class ContractError(UserError):
    """A file another stage wrote is missing or damaged."""


class Contract(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    omit_none: ClassVar[bool] = False  # leave out optional fields that are None (kept out of the file)

    def write(self, path: str | Path) -> None:
        body = self.model_dump(exclude_none=self.omit_none)
        atomic.write_text(path, json.dumps(body, indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls: type[T], path: str | Path) -> T:
        path = Path(path)
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ContractError(f"{path} does not exist; run `dvc repro` (or `dvc checkout`) first.") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ContractError(f"{path} cannot be read ({type(err).__name__}); rebuild it with `dvc repro` "
                                "or restore it with `dvc checkout`.") from None
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            raise ContractError(f"{path} is not a valid {cls.__name__} ({'.'.join(map(str, first['loc']))}: "
                                f"{first['msg']}); rebuild it with `dvc repro`.") from None


class AppliedRequest(Contract):
    request_id: str
    n_records: int


class SplitSummary(Contract):
    """data/split/summary.json: the requests in force and the counts; never a record id."""

    requests: list[AppliedRequest]
    n_retained: int
    n_forgotten: int

    @property
    def request_ids(self) -> list[str]:
        return [r.request_id for r in self.requests]


ORIGINAL_MAP = "the original's MAP"


class Convergence(Contract):
    """Where a MAP fit stopped: converged when |∇L| is within `train.grad_tolerance`."""

    grad_norm: float
    grad_tolerance: float

    @property
    def converged(self) -> bool:
        return self.grad_norm <= self.grad_tolerance

    def problem(self, fit: str) -> str | None:
        """One line naming `fit` if it stopped short of the tolerance (the stages, the gate and the headline
        all say it in these words); None if it converged."""
        if self.converged:
            return None
        return f"{fit} did not converge (|grad| {self.grad_norm:.3g} > tolerance {self.grad_tolerance:g})"


class MapFit(Convergence):
    """How one MAP fit (model/training.fit_map) ended."""

    objective: float
    polish_iterations: int
    polish_converged: bool


class TrainReport(MapFit):
    """metrics/train.json: the original's MAP."""

    n_params: int
    n_train: int

    def original_problem(self) -> str | None:
        return self.problem(ORIGINAL_MAP)


class RetrainReport(Contract):
    """metrics/retrain.json: the reference retrains' MAPs, by seed ("seed_0", ...)."""

    fits: dict[str, MapFit]

    def problems(self) -> list[str]:
        """One line per retrain that stopped short: the reference it gives is unreliable."""
        found = [fit.problem(f"the retrain's MAP ({seed.replace('_', ' ')})") for seed, fit in self.fits.items()]
        return [f"{line}: an unreliable reference" for line in found if line]

    @property
    def max_grad_norm(self) -> float:
        return max(fit.grad_norm for fit in self.fits.values())


class GateReport(Contract):
    """metrics/gate.json: the gate's decision on the production method and the signals behind it."""

    method: str
    decision: Literal["pass", "fallback"]
    passed: bool
    reasons: list[str]
    retained_nll_change: float      # of the served predictive, nats per retained record
    residual_ratio: float           # of the network at the moved mean (decides only if gate.max_residual_ratio is set)
    residual_unlearned: float
    residual_original: float
    original_grad_norm: float       # |∇L| of the original's MAP on the full data; above train.grad_tolerance: fallback
    mia_auc: float | None
    unlearn_status: str
    repair: str
    n_forgotten: int


class PrivacyReport(Contract):
    """metrics/privacy.json: the per-record membership test of the forgotten records (experiments/privacy.py)."""

    shadow_retrains: int
    alpha: float
    n_forgotten: int
    told_apart_served: float | None     # share of forgotten records told apart under the served posterior
    told_apart_retrain: float | None    # the same under the reference retrain (about alpha); None: nothing forgotten


class Provenance(Contract):
    """models/served/provenance.json: where the served posterior came from."""

    omit_none: ClassVar[bool] = True

    path: Literal["fast", "fallback"]
    source: str
    method: str
    posterior: str
    gate: Literal["pass", "fallback"]
    gate_reasons: list[str]
    refit_grad_norm: float | None = None


class Headline(Contract):
    """metrics/headline.json: the main job's result, the one table `dvc metrics show` prints. The test fit is
    RMSE for a real target, accuracy and expected calibration error for a binary one (the others are left out)."""

    omit_none: ClassVar[bool] = True

    method: str
    served: Literal["fast", "fallback"]
    gate: Literal["pass", "fallback"]
    requests: list[str]            # request ids in force (never record ids)
    forgotten: int
    retained: int
    gain: float                    # predictive KL(retrain ‖ served) / KL(retrain ‖ original): below 1 = helped
    indistinguishability: float    # median KL(retrain_i ‖ served) / median KL between retrains: 1 = as close as
    test_rmse: float | None = None  #   two retrains are to each other
    test_rmse_retrained: float | None = None
    test_accuracy: float | None = None
    test_accuracy_retrained: float | None = None
    test_ece: float | None = None
    test_ece_retrained: float | None = None
    mia_auc: float                 # membership AUC of forgotten vs unseen records; target: the retrain's
    mia_auc_retrained: float
    original_grad_norm: float      # |∇L| at the original's MAP and the largest among the reference retrains';
    reference_grad_norm: float     #   above train.grad_tolerance, `unconverged` names the fit
    unconverged: list[str]         # one line per MAP that stopped short of the tolerance (empty: all converged)


# The DVC stage that checks params.yaml, upstream of every other: it makes no artifact (its output is constant),
# so it is no part of the production chain's recorded artifacts, but the flows run it first.
CHECK_STAGE = "params"


def production_stages(method: str, posterior: str) -> list[str]:
    """The stages the served posterior needs, in DAG order; never the reference retrains."""
    return ["prepare", "split", "train", f"fit_posterior@{posterior}", f"unlearn@{method}", "gate", "serve"]
