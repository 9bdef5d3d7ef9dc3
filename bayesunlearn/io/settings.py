"""params.yaml as typed, validated settings: loaded once per process, checked as a whole before any work.

Every section is a pydantic model in strict mode with unknown keys forbidden:
a typo (`requests_dri`), a string where a number belongs (`test_fraction: "abc"`)
or a fraction where an integer belongs (`seed: 1.5`) stops the process with a
message that names the key. Cross-references (the gate's method, the methods'
posterior kinds, the study's and sweep's methods) are checked with the rest,
so a wrong name fails in the first second, not as a missing file later.

Pydantic (already installed with Prefect) rather than hand-written checks:
one declaration per key gives its type, range, default and error message.
TensorFlow-free, so light tools validate quickly.
"""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bayesunlearn.errors import ConfigError
from bayesunlearn.kinds import KindName, VIKindName

PARAMS = Path("params.yaml")

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


def _inside_workspace(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"{value!r} must be a relative path inside the workspace (no '..', not absolute)")
    return value


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


class CsvSource(Section):
    path: WorkspacePath = "data/raw/records.csv"
    target: Annotated[str, Field(min_length=1)] = "y"
    id_column: str | None = None

    _path = field_validator("path")(classmethod(lambda cls, v: _inside_workspace(v)))


class Prepare(Section):
    source: Literal["two_clusters", "diabetes", "csv"]
    seed: Seed
    test_fraction: Fraction
    two_clusters: TwoClusters
    csv: CsvSource = CsvSource()


class Split(Section):
    requests_dir: WorkspacePath = "data/requests"
    max_request_bytes: Annotated[int, Field(ge=1024, le=100_000_000)] = 1_000_000

    _path = field_validator("requests_dir")(classmethod(lambda cls, v: _inside_workspace(v)))


# --- model and fitting ------------------------------------------------------------------------
class Model(Section):
    """Prior N(0, 1/prior_precision I), likelihood N(f(x, θ), noise_std²), f an MLP."""

    hidden: list[int]
    activation: Literal["tanh", "relu", "softplus"] = "tanh"
    prior_precision: PositiveFloat
    noise_std: PositiveFloat

    @field_validator("hidden")
    @classmethod
    def _widths(cls, value: list[int]) -> list[int]:
        if any(width < 1 for width in value):
            raise ValueError(f"{value} must list positive layer widths")
        return value


class Train(Section):
    """MAP training: full-batch Adam, then a second-order polish to ∇L(θ*) ≈ 0."""

    seed: Seed = 0
    adam_steps: Annotated[int, Field(ge=0)] = 2000
    learning_rate: PositiveFloat = 0.01
    polish: Literal["lm", "lbfgs", "none"] = "lm"
    polish_iterations: Annotated[int, Field(ge=0)] = 200
    grad_tolerance: PositiveFloat = 1e-8


class Retrain(Section):
    seeds: PositiveInt


class Laplace(Section):
    optimize_hyperparameters: bool = False


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
    mean_update: Literal["newton", "damped", "none"] = "newton"
    eig_floor: PositiveFloat | None = None   # eigenvalue floor of the repairs; default: the prior precision
    trust_tolerance: PositiveFloat = 0.25    # |actual/predicted − 1| allowed for the damped step
    woodbury: bool = True


class Divide(DivideOptions):
    """A method: Gaussian division on a posterior kind."""

    posterior: KindName
    operator: Literal["divide"]


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


Method = Annotated[Divide | VariationalUnlearning, Field(discriminator="operator")]


# --- production, audit, experiments -----------------------------------------------------------
class Gate(Section):
    method: str
    posterior: KindName
    max_residual_ratio: PositiveFloat = 1.0
    max_mia_auc: Annotated[float, Field(gt=0, le=1)] = 0.65
    allowed_repairs: list[Literal["none", "clip", "damp"]] = ["none"]


class Audit(Section):
    max_gain: PositiveFloat = 1.0
    max_indistinguishability: PositiveFloat = 10.0


class Ledger(Section):
    commit: bool = True
    retention_days: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0


CRON = re.compile(r"^\S+(\s+\S+){4,5}$")


class Schedule(Section):
    intake_cron: str = "*/15 * * * *"
    audit_cron: str = "0 3 * * *"

    @field_validator("intake_cron", "audit_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not CRON.match(value.strip()):
            raise ValueError(f"{value!r} is not a cron expression (five fields, e.g. '*/15 * * * *')")
        return value


class Evaluate(Section):
    timing_repeats: PositiveInt = 3
    plot_grid_points: Annotated[int, Field(ge=2)] = 200


class Study(Section):
    modes: Annotated[list[Literal["random", "cluster"]], Field(min_length=1)]
    fractions: Annotated[list[Fraction], Field(min_length=1)]
    seeds: Annotated[list[Seed], Field(min_length=1)]
    methods: list[str] = []   # empty = every configured method


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


class Settings(Section):
    """The whole of params.yaml."""

    prepare: Prepare
    split: Split = Split()
    model: Model
    train: Train
    retrain: Retrain
    laplace: Laplace = Laplace()
    vi: VI = VI()
    posteriors: Annotated[list[KindName], Field(min_length=1)]
    methods: Annotated[dict[str, Method], Field(min_length=1)]
    gate: Gate
    audit: Audit = Audit()
    ledger: Ledger = Ledger()
    schedule: Schedule = Schedule()
    evaluate: Evaluate = Evaluate()
    study: Study
    sweep: Sweep

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        problems = []
        configured = sorted(self.methods)
        if self.gate.method not in self.methods:
            problems.append(f"gate.method: {self.gate.method!r} is not a configured method{_close(self.gate.method, configured)}; "
                            f"configured: {configured}")
        elif self.methods[self.gate.method].posterior != self.gate.posterior:
            problems.append(f"gate.posterior: {self.gate.posterior!r} must be the posterior of gate.method "
                            f"{self.gate.method!r}, which is {self.methods[self.gate.method].posterior!r}")
        if len(set(self.posteriors)) != len(self.posteriors):
            problems.append(f"posteriors: {self.posteriors} lists a kind twice")
        for name, method in self.methods.items():
            if method.posterior not in self.posteriors:
                problems.append(f"methods.{name}.posterior: {method.posterior!r} is not fitted; add it to "
                                f"`posteriors` ({self.posteriors})")
        for section in ("study", "sweep"):
            unknown = [m for m in getattr(self, section).methods if m not in self.methods]
            if unknown:
                problems.append(f"{section}.methods: {unknown} are not configured methods; configured: {configured}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def method(self, name: str) -> Divide | VariationalUnlearning:
        if name not in self.methods:
            raise ConfigError(f"method {name!r} is not configured; params.yaml methods are {sorted(self.methods)}.")
        return self.methods[name]

    def chosen_methods(self, names: list[str]) -> dict[str, Divide | VariationalUnlearning]:
        """The named methods in the order named; every configured method when `names` is empty."""
        return {n: self.methods[n] for n in names} if names else dict(self.methods)


def _close(word: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --- loading ----------------------------------------------------------------------------------
def _yaml_load(text: str) -> Any:
    """YAML 1.2, as DVC reads params.yaml (so `1e-6` is a number, `yes` a string); duplicate keys refused."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=False).load(text)


METHOD_MODELS = {"divide": Divide, "eubo": VariationalUnlearning, "reverse_kl": VariationalUnlearning}


def _describe(error: dict) -> str:
    """One readable line for a pydantic error: the dotted key, what is wrong, and the value given."""
    loc = [str(part) for part in error["loc"]]
    model = None
    if len(loc) > 2 and loc[0] == "methods" and loc[2] in METHOD_MODELS:
        model = METHOD_MODELS[loc.pop(2)]  # the discriminator tag pydantic inserts names the method model
    key = ".".join(loc)
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        known = sorted(model.model_fields) if model else _known_keys(loc[:-1])
        return f"{key}: unknown key{_close(loc[-1], known)} (allowed here: {', '.join(known)})"
    if kind == "missing":
        return f"{key}: missing"
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        return message if not key else f"{key}: {message}"
    given = error.get("input")
    shown = repr(given) if not isinstance(given, dict | list) else type(given).__name__
    return f"{key}: {message} (got {shown})"


def _known_keys(loc: list[str]) -> list[str]:
    """The keys allowed at a location of params.yaml, found by walking the settings models."""
    model: Any = Settings
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return sorted(model.model_fields)


def parse_section(cls: type[Section], raw: Any, key: str) -> Section:
    """One section of params.yaml (e.g. `model`), checked alone; problems are named `key.field`."""
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        lines = [_describe({**e, "loc": (key, *e["loc"])}) for e in err.errors(include_url=False)]
        raise ConfigError(f"params.yaml: {'; '.join(lines)}") from None


def parse(raw: Any, source: str = "params.yaml") -> Settings:
    """Validate a parsed params.yaml; every problem is named by its dotted key in one ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: must be a mapping of sections (prepare, split, model, ...), "
                          f"got {type(raw).__name__}.")
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        lines = [_describe(e) for e in err.errors(include_url=False)]
        shown = "; ".join(lines[:6]) + (f"; and {len(lines) - 6} more" if len(lines) > 6 else "")
        raise ConfigError(f"{source}: {shown}") from None


def load(path: str | Path = PARAMS) -> Settings:
    """The settings in `path` (params.yaml), parsed once per process and file version."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror}); restore it from the repository.") from None
    return _load(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load(path: Path, _mtime: int, _size: int) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
        raw = _yaml_load(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text.") from None
    except Exception as err:  # ruamel's parser and duplicate-key errors share no useful base class
        first = str(err).strip().splitlines()
        raise ConfigError(f"{path}: not valid YAML ({' '.join(first[:3])}).") from None
    return parse(raw, str(path.name))


def update_params(path: str | Path, changes: dict[str, Any]) -> None:
    """Set dotted keys (`prepare.csv.path`) in params.yaml, as `dvc exp run -S` does: comments, order,
    quoting and layout of every other line are kept, and the result must still be valid settings."""
    from io import StringIO

    from ruamel.yaml import YAML

    from bayesunlearn.io import atomic

    path = Path(path)
    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    yaml.indent(mapping=2, sequence=4, offset=2)  # the layout of the project's params.yaml
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    document = yaml.load(path.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = document
        for part in parents:
            node = node[part]
        node[last] = value
    out = StringIO()
    yaml.dump(document, out)
    parse(_yaml_load(out.getvalue()), path.name)  # never write settings that would not load
    atomic.write_text(path, out.getvalue())


def main(argv: list[str] | None = None) -> int:
    """`python -m bayesunlearn.io.settings [PATH]`: check params.yaml and say what is wrong."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else PARAMS
    try:
        settings = load(path)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{path}: valid ({len(settings.methods)} methods, {len(settings.posteriors)} posterior kinds, "
          f"production method {settings.gate.method})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
