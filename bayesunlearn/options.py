"""Method specifications and operator options: plain, checked data, no TensorFlow.

Stages and flows that only need to *name* a method (gate, serve, summarize)
parse params.yaml with this module without paying TensorFlow's start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

STRUCTURES = ("full_ggn", "full_hessian", "diag_ggn", "last_layer", "vi_mean_field", "vi_full")
VI_KINDS = ("vi_mean_field", "vi_full")
OPERATORS = ("divide", "eubo", "reverse_kl")


REPAIRS = ("clip", "damp", "refuse")
MEAN_UPDATES = ("newton", "damped", "none")


@dataclass(frozen=True)
class UnlearnOptions:
    repair: str = "refuse"
    mean_update: str = "newton"
    eig_floor: float | None = None  # eigenvalue floor for repairs; default: the prior precision
    trust_tolerance: float = 0.25   # |actual/predicted − 1| allowed for the damped step
    woodbury: bool = True

    def __post_init__(self) -> None:
        if self.repair not in REPAIRS:
            raise ConfigError(f"repair={self.repair!r} is not one of {list(REPAIRS)}.")
        if self.mean_update not in MEAN_UPDATES:
            raise ConfigError(f"mean_update={self.mean_update!r} is not one of {list(MEAN_UPDATES)}.")
        if not 0 < self.trust_tolerance:
            raise ConfigError(f"trust_tolerance={self.trust_tolerance} must be positive.")


OBJECTIVES = ("eubo", "reverse_kl")


@dataclass(frozen=True)
class VIUnlearnConfig:
    objective: str = "eubo"
    threshold: float = 0.0        # λ of the adjusted likelihood, in [0, 1)
    steps: int = 1000
    learning_rate: float = 0.01
    samples: int = 8              # MC samples per EUBO step
    check_every: int = 100        # steps between divergence checks
    max_kl: float = 500.0         # KL(q_u ‖ q) beyond which the EUBO is called diverged
    importance_samples: int = 4096
    min_ess: float = 30.0         # reverse KL: fewer effective samples than this is a failure
    seed: int = 0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"VI unlearning objective {self.objective!r} is not one of {list(OBJECTIVES)}.")
        if not 0 <= self.threshold < 1:
            raise ConfigError(f"threshold λ={self.threshold} must lie in [0, 1).")


@dataclass(frozen=True)
class Method:
    name: str
    posterior: str
    operator: str
    options: dict

    @classmethod
    def parse(cls, name: str, spec: dict) -> Method:
        spec = dict(spec)
        kind, operator = spec.pop("posterior", None), spec.pop("operator", "divide")
        if kind not in STRUCTURES:
            raise ConfigError(f"method {name!r}: posterior {kind!r} is not one of {sorted(STRUCTURES)}.")
        if operator not in OPERATORS:
            raise ConfigError(f"method {name!r}: operator {operator!r} is not one of {list(OPERATORS)}.")
        if operator != "divide" and kind not in VI_KINDS:
            raise ConfigError(f"method {name!r}: operator {operator!r} needs a VI posterior "
                              f"({sorted(VI_KINDS)}), not {kind!r}.")
        method = cls(name, kind, operator, spec)
        method.unlearn_config()  # validate the options now, not halfway through a run
        return method

    def unlearn_config(self) -> UnlearnOptions | VIUnlearnConfig:
        try:
            if self.operator == "divide":
                return UnlearnOptions(**self.options)
            return VIUnlearnConfig(objective=self.operator, **self.options)
        except TypeError as err:
            raise ConfigError(f"method {self.name!r}: {err}") from None


def parse_methods(section: dict) -> dict[str, Method]:
    if not section:
        raise ConfigError("params.yaml `methods` is empty; configure at least one unlearning method.")
    return {name: Method.parse(name, spec) for name, spec in section.items()}
