"""The probabilistic model: a TFP prior over θ and a TFP Gaussian likelihood.

One joint log-density, `log_joint`, serves MAP training, Laplace curvature and
variational inference alike, so the three can never disagree on the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayesunlearn.model.tf import tf, tfp
from bayesunlearn.model.network import MLPSpec, forward
from bayesunlearn.io.settings import Model

tfd = tfp.distributions


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

    def prior(self) -> tfd.Distribution:
        p = self.spec.n_params
        scale = tf.fill([p], tf.constant(self.prior_precision ** -0.5, tf.float64))
        return tfd.MultivariateNormalDiag(loc=tf.zeros(p, tf.float64), scale_diag=scale)

    def likelihood(self, theta: tf.Tensor, x: tf.Tensor) -> tfd.Distribution:
        """Per-example predictive of y given θ: a batch of n Normals."""
        return tfd.Normal(loc=forward(self.spec, theta, x), scale=tf.constant(self.noise_std, tf.float64))

    def log_joint(self, theta: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """log p(θ) + Σ_i log p(y_i | x_i, θ)."""
        return self.prior().log_prob(theta) + tf.reduce_sum(self.likelihood(theta, x).log_prob(y))

    def per_example_nll(self, theta: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return -self.likelihood(theta, x).log_prob(y)

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


def as_tensor(a: np.ndarray) -> tf.Tensor:
    return tf.convert_to_tensor(np.asarray(a, dtype=np.float64))
