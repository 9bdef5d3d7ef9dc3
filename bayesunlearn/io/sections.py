"""The sections of params.yaml, one pydantic model each (strict types, ranges, unknown keys refused).

`settings.py` puts them together, checks the cross-references and loads the file.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from bayesunlearn.kinds import KindName, VIKindName
from bayesunlearn.io.detection import detection_threshold
from bayesunlearn.io.workspace_paths import inside_workspace

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


MethodName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$")]  # names DVC stages and files
MAX_WIDTH = 10_000  # a hidden layer wider than this is a typo: the dense curvature would not fit in memory


WorkspacePath = Annotated[str, Field(min_length=1)]


class Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# --- prepare ---------------------------------------------------------------------------------
class TwoClusters(Section):
    n_records: Annotated[int, Field(ge=4)]
    noise_std: PositiveFloat
    clusters: Annotated[list[tuple[float, float]], Field(min_length=1)]

    @field_validator("clusters", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:  # YAML gives lists; strict mode wants tuples
        return [tuple(c) if isinstance(c, list) else c for c in value] if isinstance(value, list) else value

    @field_validator("clusters")
    @classmethod
    def _ordered(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if any(not low < high for low, high in value):
            raise ValueError("each cluster is [low, high] with low < high")
        return value


# A real target is standardised; a binary one keeps its 0/1 labels; a categorical one its class indices 0 … K−1.
TargetKind = Literal["real", "binary", "categorical"]
Label = Annotated[str, Field(min_length=1)]


class CsvSource(Section):
    path: WorkspacePath = "data/raw/records.csv"
    target: Annotated[str, Field(min_length=1)] = "y"
    target_kind: TargetKind = "real"  # binary: the target holds 0 and 1 (model.likelihood: bernoulli)
    id_column: str | None = None
    categorical: list[str] = []  # columns read as categories even when their values look like numbers
    # categorical: the target's labels in order (label i becomes class i); checked even when left out
    classes: Annotated[list[Label] | None, Field(validate_default=True)] = None

    _path = field_validator("path")(classmethod(lambda cls, v: inside_workspace(v)))

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        """The labels fix the order of the model's outputs, so they are declared, never guessed from the data
        (a purge that deletes every record of a class must not renumber the others)."""
        kind = info.data.get("target_kind")
        if kind is None:  # target_kind itself is wrong: its own error says so
            return value
        if kind != "categorical":
            if value is not None:
                raise ValueError(f"only a categorical target has class labels (target_kind is {kind!r}); set "
                                 "target_kind: categorical or remove classes")
        elif value is None or len(value) < 2:
            raise ValueError("a categorical target (target_kind: categorical) needs its labels in order, at "
                             "least 2, e.g. classes: [Adelie, Chinstrap, Gentoo]")
        elif len(set(value)) != len(value):
            raise ValueError(f"{value} lists a label twice")
        return value


PackagedName = Literal["concrete", "diamonds"]  # the packaged regression tables of datasets.PACKAGED
PackagedBinary = Literal["default"]  # the packaged binary tables (0/1 target; model.likelihood=bernoulli)
PackagedClasses = Literal["penguins"]  # the packaged multiclass tables (model.likelihood=categorical)


class Prepare(Section):
    source: Literal["two_clusters", "diabetes", PackagedName, PackagedBinary, PackagedClasses, "csv"]
    seed: Seed
    test_fraction: Fraction
    two_clusters: TwoClusters
    csv: CsvSource = CsvSource()
    # a seeded subsample of larger training and test parts, each at most this many rows (null: every row)
    max_records: PositiveInt | None = None

    @property
    def target_kind(self) -> str:
        """"binary" or "categorical" for the packaged tables of those kinds and a csv declared so; else "real"."""
        if self.source == "csv":
            return self.csv.target_kind
        if self.source in get_args(PackagedClasses):
            return "categorical"
        return "binary" if self.source in get_args(PackagedBinary) else "real"


class Split(Section):
    requests_dir: WorkspacePath = "data/requests"
    max_request_bytes: Annotated[int, Field(ge=1024, le=100_000_000)] = 1_000_000

    @field_validator("requests_dir")
    @classmethod
    def _requests_folder(cls, value: str) -> str:
        """A folder of its own under data/ (versioned with the data; not a stage's output or the raw data)."""
        inside_workspace(value)
        if not value.startswith("data/") or value.split("/")[1] in ("prepared", "split", "raw"):
            raise ValueError(f"{value!r} must be a folder of its own under data/ (not data/prepared, data/split "
                             "or data/raw)")
        return value


# --- model and fitting ------------------------------------------------------------------------
class Model(Section):
    """Prior N(0, 1/prior_precision I), f an MLP; likelihood N(f(x, θ), noise_std²) (`gaussian`),
    Bernoulli(sigmoid f(x, θ)) (`bernoulli`, binary targets) or Categorical(softmax f(x, θ)) (`categorical`,
    K classes: f has K outputs); noise_std is unused by the classifiers."""

    hidden: list[int]
    activation: Literal["tanh", "relu", "softplus"] = "tanh"
    prior_precision: PositiveFloat
    noise_std: PositiveFloat
    likelihood: Literal["gaussian", "bernoulli", "categorical"] = "gaussian"

    @field_validator("hidden")
    @classmethod
    def _widths(cls, value: list[int]) -> list[int]:
        if any(width < 1 or width > MAX_WIDTH for width in value):
            raise ValueError(f"{value} must list layer widths from 1 to {MAX_WIDTH:,}")
        return value


class Train(Section):
    """MAP training: full-batch Adam, then a second-order polish to ∇L(θ*) ≈ 0."""

    seed: Seed = 0
    adam_steps: Annotated[int, Field(ge=0)] = 2000
    learning_rate: PositiveFloat = 0.01
    polish: Literal["lm", "newton", "lbfgs", "none"] = "lm"
    polish_iterations: Annotated[int, Field(ge=0)] = 200
    grad_tolerance: PositiveFloat = 1e-8


class Retrain(Section):
    seeds: PositiveInt


class Laplace(Section):
    optimize_hyperparameters: bool = False
    shards: PositiveInt = 1   # > 1: the original fit's curvature sum as a map-reduce over row shards on Dask
    subnetwork_size: PositiveInt = 64  # weights the subnetwork posterior covers densely (largest variance)


class VI(Section):
    """Gaussian VI (TFP) started from the Laplace fit of the same family."""

    steps: PositiveInt = 3000
    samples: PositiveInt = 8
    seed: Seed = 0
    init_scale: PositiveFloat = 1.0
    learning_rate: dict[VIKindName, PositiveFloat] | PositiveFloat = 0.01

    def rate(self, kind: str) -> float:
        rates = self.learning_rate
        return rates.get(kind, 0.01) if isinstance(rates, dict) else rates


# --- unlearning methods -----------------------------------------------------------------------
class DivideOptions(Section):
    """How Gaussian division Λ_r = Λ − H_f handles an indefinite result and moves the mean."""

    repair: Literal["clip", "damp", "refuse"] = "refuse"
    mean_update: Literal["newton", "damped", "none", "cg"] = "newton"  # cg: the full GGN's Newton step by
                                             # conjugate gradients on the retained records (unlearning/newton_cg.py)
    eig_floor: PositiveFloat | None = None   # eigenvalue floor of the repairs; default: the prior precision
    trust_tolerance: PositiveFloat = 0.25    # |actual/predicted − 1| allowed for the damped step
    refine: Annotated[int, Field(ge=0, le=1000)] = 0  # more Newton steps on the retained records (0: never read)
    refine_tolerance: PositiveFloat | None = None  # refine until ‖∇L_r‖ ≤ this, then refit the Laplace there
    woodbury: bool = True
    cg_tolerance: Annotated[float, Field(gt=0, lt=1)] = 1e-6  # cg stops at a residual ≤ this × ‖rhs‖ ...
    cg_iterations: Annotated[int, Field(ge=1, le=10_000)] = 100  # ... or after this many (one pass over D_r each)
    cg_preconditioner: Literal["structure", "none"] = "structure"  # the posterior's own Λ_r, or none

    @field_validator("refine_tolerance")
    @classmethod
    def _budget(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and not info.data.get("refine"):
            raise ValueError("refining to a tolerance needs a budget of Newton steps: set refine to at least 1")
        return value


class Divide(DivideOptions):
    """A method: Gaussian division on a posterior kind."""

    posterior: KindName
    operator: Literal["divide"]

    @property
    def reads_retained(self) -> bool:
        """Refining steps on the retained objective, or CG on their GGN: the method needs the retained records."""
        return self.refine > 0 or self.mean_update == "cg"


class VariationalOptions(Section):
    """EUBO or reverse-KL unlearning of a VI posterior with the adjusted likelihood (threshold λ)."""

    operator: Literal["eubo", "reverse_kl"] = "eubo"
    threshold: Annotated[float, Field(ge=0, lt=1)] = 0.0
    steps: PositiveInt = 1000
    learning_rate: PositiveFloat = 0.01
    samples: PositiveInt = 8               # Monte Carlo samples per EUBO step
    check_every: PositiveInt = 100         # steps between divergence checks
    max_kl: PositiveFloat = 500.0          # KL(q_u ‖ q) beyond which the EUBO is called diverged
    importance_samples: PositiveInt = 4096
    min_ess: PositiveFloat = 30.0          # reverse KL: fewer effective samples than this is a failure
    seed: Seed = 0


class VariationalUnlearning(VariationalOptions):
    """A method: a variational operator on a VI posterior kind."""

    posterior: VIKindName
    operator: Literal["eubo", "reverse_kl"]

    @property
    def reads_retained(self) -> bool:
        """The variational operators read the forgotten records only."""
        return False


Method = Annotated[Divide | VariationalUnlearning, Field(discriminator="operator")]


# --- production, audit, experiments -----------------------------------------------------------
class Gate(Section):
    method: str
    posterior: KindName
    max_retained_nll_change: PositiveFloat = 0.01   # nats per retained record, of the served predictive
    max_residual_ratio: PositiveFloat | None = None  # of the network at the moved mean; None = not a criterion
    max_mia_auc: Annotated[float, Field(gt=0, le=1)] = 0.65
    allowed_repairs: list[Literal["none", "clip", "damp"]] = ["none"]


class Audit(Section):
    max_gain: PositiveFloat = 1.0
    max_indistinguishability: PositiveFloat = 10.0
    shadow_retrains: Annotated[int, Field(ge=2, le=1000)] = 8   # K of the per-record membership test
    privacy_alpha: Fraction = 0.05    # its false-positive rate on a model that never saw the records
    detection_size: Fraction = 0.05   # a difference to the retrains is detectable by a likelihood-ratio test
    # of this size with this power (docs/methods.md); checked against the size even when left out
    detection_power: Annotated[float, Field(gt=0, lt=1, validate_default=True)] = 0.95
    # an intake run that served the fast path runs the audit right after (flows/intake.py): a posterior the
    # audit rejects is replaced within one audit's time, not at the next audit_cron
    after_intake: bool = False

    @field_validator("detection_power")
    @classmethod
    def _power(cls, value: float, info: ValidationInfo) -> float:
        size = info.data.get("detection_size")
        if size is not None and value < size:
            raise ValueError(f"{value:g} is below detection_size {size:g}: a test that rejects at random with "
                             "probability a already has power a")
        return value

    @property
    def detectable_nats(self) -> float:
        """n × predictive KL (nats) a test of detection_size needs for detection_power (0 when they are equal)."""
        return detection_threshold(self.detection_size, self.detection_power)

    def problems(self, gain: float, indistinguishability: float, evidence: float = float("inf"),
                 detectable: float | None = None) -> list[str]:
        """The audit's verdict on an unlearned posterior: empty when good, else why it is poor: no better than
        doing nothing (gain ≥ max_gain: a no-op has gain 1), or far outside the spread among retrains
        (indistinguishability > max_indistinguishability) by a difference one could detect. `evidence` is the
        predictive KL to the retrain summed over the judged inputs (n × mean KL: the expected log-likelihood
        ratio of one label per input); below `detectable` nats (default: detectable_nats) no test on those
        inputs tells the two apart at the stated error rates, which matters where retrains agree to rounding (a
        near-convex classifier: the spread among them is ~1e-17 nats, any ratio to it huge). NaN is poor."""
        limit = self.detectable_nats if detectable is None else detectable
        found = [] if gain < self.max_gain else [f"gain {gain:.3g} ≥ {self.max_gain:g}"]
        if not indistinguishability <= self.max_indistinguishability and not evidence < limit:
            found.append(f"indistinguishability {indistinguishability:.3g} > {self.max_indistinguishability:g}")
        return found

    def verdict(self, gain: float, indistinguishability: float, evidence: float, original_evidence: float,
                membership: str | None = None) -> tuple[Literal["good", "poor", "immaterial"], list[str]]:
        """`problems`, and "immaterial" when neither the original (doing nothing) nor the unlearned posterior
        differs detectably from the retrains (`original_evidence`: the original's n × predictive KL): the
        deletion changed nothing a test could see, so forgetting can neither help nor harm. A step that makes a
        difference detectable where doing nothing left none is poor (its gain exceeds 1), as is a `membership`
        problem (detection.membership_problem: forgotten records stand out) whatever the predictive says."""
        limit = self.detectable_nats
        leaks = [membership] if membership else []
        if evidence < limit and original_evidence < limit:
            return ("poor", leaks) if leaks else ("immaterial", [])
        found = self.problems(gain, indistinguishability, evidence, limit) + leaks
        return ("poor" if found else "good"), found


class Ledger(Section):
    commit: bool = True
    retention_days: Annotated[float, Field(ge=0, le=36_500, allow_inf_nan=False)] = 30.0  # at most 100 years


# Five fields of numbers, `*`, three-letter names, ranges, steps and lists: the cron both cronsim (here) and
# Prefect's croniter (at `make serve`) read alike; L, W, # and ? are left out (croniter refuses some of them).
_FIELD = r"(\*|\d+|[A-Za-z]{3})([-/,](\*|\d+|[A-Za-z]{3}))*"
CRON = re.compile(rf"^{_FIELD}(\s+{_FIELD}){{4}}$", re.ASCII)


class Schedule(Section):
    intake_cron: str = "*/15 * * * *"
    audit_cron: str = "0 3 * * *"

    @field_validator("intake_cron", "audit_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from cronsim import CronSim, CronSimError

        try:
            if not CRON.match(value.strip()):
                raise CronSimError("not five fields")
            CronSim(value.strip(), datetime(2026, 1, 1))
        except CronSimError as err:
            raise ValueError(f"{value!r} is not a cron expression ({err}; five fields, e.g. '*/15 * * * *')") from None
        return value


class Evaluate(Section):
    timing_repeats: PositiveInt = 3
    plot_grid_points: Annotated[int, Field(ge=2)] = 200


class Study(Section):
    modes: Annotated[list[Literal["random", "cluster"]], Field(min_length=1)]
    fractions: Annotated[list[Fraction], Field(min_length=1)]
    seeds: Annotated[list[Seed], Field(min_length=1)]
    methods: list[str] = []   # empty = every configured method


class RealStudy(Section):
    """The study on the packaged real tables (stage `real_study` of study/dvc.yaml)."""

    datasets: Annotated[list[PackagedName | PackagedBinary | PackagedClasses], Field(min_length=1)] = ["concrete"]
    max_train_records: PositiveInt = 2000   # a seeded subsample of larger training parts
    modes: Annotated[list[Literal["random", "segment"]], Field(min_length=1)] = ["random", "segment"]
    fractions: Annotated[list[Fraction], Field(min_length=1)] = [0.01, 0.05, 0.1, 0.2]   # random deletions
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0, 1, 2]
    segment_clusters: Annotated[int, Field(ge=2, le=100)] = 8   # k-means clusters of tables without categories
    segment_max_share: Fraction = 0.25    # a segment is a part of the customers, not most of them
    methods: list[str] = []   # empty = every configured method
    finetune_steps: list[PositiveInt] = [100, 1000]   # Adam steps of the fine-tuning baselines

    @field_validator("finetune_steps")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"{value} lists a budget twice")
        return value


class Sweep(Section):
    methods: list[str] = []   # empty = every configured method
    modes: Annotated[list[Literal["random", "cluster"]], Field(min_length=1)]
    fractions: Annotated[list[Fraction], Field(min_length=1)]
    seeds: Annotated[list[Seed], Field(min_length=1)]
    hidden: Annotated[list[list[int]], Field(min_length=1)]   # network sizes (hidden widths), one grid axis
    address: str | None = None    # a running Dask scheduler; None = a local cluster
    n_workers: Annotated[int, Field(ge=0)] = 2
    retries: Annotated[int, Field(ge=0)] = 2

    @field_validator("hidden")
    @classmethod
    def _widths(cls, value: list[list[int]]) -> list[list[int]]:
        for hidden in value:
            Model._widths(hidden)
        return value
