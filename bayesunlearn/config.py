"""Turn plain parameter dictionaries (e.g. sections of params.yaml) into checked objects.

Kept free of TensorFlow so that light tools can validate parameters quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class ModelParams:
    hidden: tuple[int, ...]
    activation: str
    prior_precision: float
    noise_std: float


def model_params(section: dict) -> ModelParams:
    try:
        hidden = tuple(int(h) for h in section.get("hidden", [50]))
        params = ModelParams(hidden, str(section.get("activation", "tanh")),
                             float(section["prior_precision"]), float(section["noise_std"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"params.yaml model section is incomplete or mistyped ({err!r}); it needs "
                          f"hidden (list of ints), activation, prior_precision and noise_std.") from None
    if not params.prior_precision > 0:
        raise ConfigError(f"model.prior_precision={params.prior_precision} must be > 0 (1 / prior variance).")
    if not params.noise_std > 0:
        raise ConfigError(f"model.noise_std={params.noise_std} must be > 0 (observation noise, standardised units).")
    if any(h < 1 for h in hidden):
        raise ConfigError(f"model.hidden={list(hidden)} must list positive layer widths.")
    return params


def build_model(section: dict, input_dim: int):
    """A `RegressionModel` from the params.yaml `model` section (imports TensorFlow)."""
    from .model import RegressionModel
    from .network import MLPSpec

    p = model_params(section)
    try:
        spec = MLPSpec(input_dim, p.hidden, p.activation)
    except ValueError as err:
        raise ConfigError(f"params.yaml model section: {err}") from None
    return RegressionModel(spec, p.prior_precision, p.noise_std)


def train_config(section: dict):
    from .training import TrainConfig

    keys = ("adam_steps", "learning_rate", "polish", "polish_iterations", "grad_tolerance")
    try:
        return TrainConfig(**{k: section[k] for k in keys if k in section})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"params.yaml train section: {err}") from None
