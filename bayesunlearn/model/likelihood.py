"""The probabilistic model: θ ~ N(0, α⁻¹ I), y | x, θ ~ N(f(x, θ), σ²), f an MLP.

Plain data (no TensorFlow), with the objective L(θ) = −log p(θ) − Σ_i log p(y_i | x_i, θ)
and its gradient in NumPy. The same density in TensorFlow Probability, for
training and VI, is model/autodiff.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesunlearn.io.sections import Model
from bayesunlearn.model.network import MLPSpec, outputs_and_vjp


@dataclass(frozen=True)
class RegressionModel:
    """θ ~ N(0, α⁻¹ I),  y | x, θ ~ N(f(x, θ), σ²)."""

    spec: MLPSpec
    prior_precision: float
    noise_std: float

    def __post_init__(self) -> None:
        if not self.prior_precision > 0:
            raise ValueError(f"prior_precision={self.prior_precision} must be positive (it is 1/prior variance).")
        if not self.noise_std > 0:
            raise ValueError(f"noise_std={self.noise_std} must be positive.")

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), "prior_precision": float(self.prior_precision),
                "noise_std": float(self.noise_std)}

    @classmethod
    def from_dict(cls, d: dict) -> RegressionModel:
        return cls(MLPSpec.from_dict(d["spec"]), float(d["prior_precision"]), float(d["noise_std"]))


def build_model(section: Model, input_dim: int) -> RegressionModel:
    """The model that params.yaml `model` describes, for inputs of `input_dim` features."""
    return RegressionModel(MLPSpec(input_dim, tuple(section.hidden), section.activation), section.prior_precision,
                           section.noise_std)


def nll(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Σ_i −log p(y_i | x_i, θ) and its gradient Σ_i ∇ℓ_i = Jᵀ(f − y)/σ² (one backward pass)."""
    inv_var = model.noise_std ** -2
    f, grad = outputs_and_vjp(model.spec, theta, x, lambda f: inv_var * (f - y))
    value = 0.5 * inv_var * float(np.sum((y - f) ** 2)) + len(y) * np.log(model.noise_std * np.sqrt(2 * np.pi))
    return float(value), grad


def objective(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """L(θ) = −log p(θ) − Σ_i log p(y_i | x_i, θ) and ∇L(θ)."""
    theta = np.asarray(theta, dtype=np.float64)
    value, grad = nll(model, theta, x, y)
    p, alpha = len(theta), model.prior_precision
    log_prior = -0.5 * alpha * float(theta @ theta) + 0.5 * p * np.log(alpha / (2 * np.pi))
    return value - log_prior, grad + alpha * theta
