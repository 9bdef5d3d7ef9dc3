"""The probabilistic model: θ ~ N(0, α⁻¹ I) and y | x, θ from a likelihood of the network's output f(x, θ).

- `gaussian`: y | x, θ ~ N(f, σ²), regression on real targets;
- `bernoulli`: y | x, θ ~ Bernoulli(sigmoid(f)), binary classification with f the logit (σ is unused).

Plain data (no TensorFlow), with the objective L(θ) = −log p(θ) − Σ_i log p(y_i | x_i, θ)
and its gradient in NumPy. Everything else that depends on the likelihood asks the model:
the per-record loss ℓ(f, y), its derivative and second derivative in f (the GGN's output
Hessian: 1/σ², or p(1 − p)), and the linearised predictive's NLL and KL. The same density
in TensorFlow Probability, for training and VI, is model/autodiff.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from bayesunlearn.numerics import metrics

from bayesunlearn.io.sections import Model
from bayesunlearn.model.network import MLPSpec, outputs_and_vjp


LIKELIHOODS = ("gaussian", "bernoulli")


@dataclass(frozen=True)
class RegressionModel:
    """θ ~ N(0, α⁻¹ I) and y | x, θ ~ N(f(x, θ), σ²) (`gaussian`) or Bernoulli(sigmoid f(x, θ)) (`bernoulli`):
    a regression in the generalised-linear sense, on real or on binary targets."""

    spec: MLPSpec
    prior_precision: float
    noise_std: float
    likelihood: str = "gaussian"

    def __post_init__(self) -> None:
        if not self.prior_precision > 0:
            raise ValueError(f"prior_precision={self.prior_precision} must be positive (it is 1/prior variance).")
        if not self.noise_std > 0:
            raise ValueError(f"noise_std={self.noise_std} must be positive.")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood {self.likelihood!r} is not one of {list(LIKELIHOODS)}")

    @property
    def gaussian(self) -> bool:
        return self.likelihood == "gaussian"

    def to_dict(self) -> dict:
        out = {"spec": self.spec.to_dict(), "prior_precision": float(self.prior_precision),
               "noise_std": float(self.noise_std)}
        if not self.gaussian:  # absent for gaussian, so earlier posterior files keep their bytes
            out["likelihood"] = self.likelihood
        return out

    @classmethod
    def from_dict(cls, d: dict) -> RegressionModel:
        return cls(MLPSpec.from_dict(d["spec"]), float(d["prior_precision"]), float(d["noise_std"]),
                   str(d.get("likelihood", "gaussian")))

    # --- the per-record loss ℓ(f, y) = −log p(y | f) in the output f --------------------------------
    def error(self, f: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The prediction error whose multiple by `error_scale` is ∂ℓ/∂f: f − y, or sigmoid(f) − y."""
        return f - y if self.gaussian else expit(f) - y

    @property
    def error_scale(self) -> float:
        """∂ℓ/∂f = error_scale · error: 1/σ², or 1."""
        return self.noise_std ** -2 if self.gaussian else 1.0

    def weigh(self, rows: np.ndarray, f: np.ndarray | None) -> tuple[np.ndarray, float]:
        """(R, s) with Σ_i w_i r_i r_iᵀ = s·RᵀR for rows r_i (Jacobian rows, or a layer's sensitivities)
        and the output Hessian w_i = ∂²ℓ/∂f²: 1/σ² for every record (R = rows), or p_i(1 − p_i)
        (R = √w·rows, s = 1)."""
        if self.gaussian:
            return rows, self.noise_std ** -2
        weight = expit(f) * expit(-f)
        return rows * np.sqrt(weight).reshape((-1,) + (1,) * (rows.ndim - 1)), 1.0

    def loss(self, f: np.ndarray, y: np.ndarray) -> float:
        """Σ_i ℓ(f_i, y_i) up to a constant: Σ (y − f)²/2σ², or Σ log(1 + e^f) − y f."""
        if self.gaussian:
            return float(0.5 * np.sum((y - f) ** 2) / self.noise_std ** 2)
        return float(np.sum(np.logaddexp(0.0, f) - y * f))

    # --- the linearised predictive: f ~ N(mean, var) at each input --------------------------------
    @property
    def observation_variance(self) -> float:
        """Added to the variance of f for the predictive's moments: σ² for y itself; 0 for the logit."""
        return self.noise_std ** 2 if self.gaussian else 0.0

    def predictive_nll(self, y: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """Per-record negative log predictive probability of y (Gaussian density, or the probit-approximated
        Bernoulli probability of the class)."""
        return metrics.gaussian_nll(y, mean, var) if self.gaussian else metrics.bernoulli_nll(y, mean, var)

    def predictive_kl(self, p: tuple[np.ndarray, np.ndarray], q: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """KL(p's predictive ‖ q's) per input, from each predictive's (mean, var)."""
        return metrics.predictive_kl(*p, *q) if self.gaussian else metrics.bernoulli_kl(*p, *q)


def build_model(section: Model, input_dim: int) -> RegressionModel:
    """The model that params.yaml `model` describes, for inputs of `input_dim` features."""
    return RegressionModel(MLPSpec(input_dim, tuple(section.hidden), section.activation), section.prior_precision,
                           section.noise_std, section.likelihood)


def nll(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Σ_i −log p(y_i | x_i, θ) and its gradient Σ_i ∇ℓ_i = Jᵀ ∂ℓ/∂f (one backward pass)."""
    if not model.gaussian:
        f, grad = outputs_and_vjp(model.spec, theta, x, lambda f: model.error(f, y))  # ∂ℓ/∂f: error_scale is 1
        return model.loss(f, y), grad
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
