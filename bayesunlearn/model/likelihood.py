"""The probabilistic model: θ ~ N(0, α⁻¹ I) and y | x, θ from a likelihood of the network's output f(x, θ).

- `gaussian`: y | x, θ ~ N(f, σ²), regression on real targets;
- `bernoulli`: y | x, θ ~ Bernoulli(sigmoid(f)), binary classification with f the logit (σ is unused);
- `categorical`: y | x, θ ~ Categorical(softmax(f)), K ≥ 2 classes with f the K logits (labels 0 … K − 1).

Plain data (no TensorFlow), with the objective L(θ) = −log p(θ) − Σ_i log p(y_i | x_i, θ)
and its gradient in NumPy. Everything else that depends on the likelihood asks the model:
the per-record loss ℓ(f, y), its derivative and second derivative in f (the GGN's output
Hessian: 1/σ², p(1 − p), or diag(p) − ppᵀ), and the linearised predictive's NLL and KL. A categorical
model's arrays over f hold each record's K output rows, record-major (model/network.py). The same density
in TensorFlow Probability, for training and VI, is model/autodiff.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_softmax, softmax

from bayesunlearn.numerics import metrics

from bayesunlearn.io.sections import Model
from bayesunlearn.model.network import MLPSpec, outputs_and_vjp


LIKELIHOODS = ("gaussian", "bernoulli", "categorical")


@dataclass(frozen=True)
class RegressionModel:
    """θ ~ N(0, α⁻¹ I) and y | x, θ ~ N(f(x, θ), σ²) (`gaussian`), Bernoulli(sigmoid f(x, θ)) (`bernoulli`)
    or Categorical(softmax f(x, θ)) (`categorical`): a regression in the generalised-linear sense, on real,
    binary or class targets."""

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
        if (self.likelihood == "categorical") != (self.spec.outputs > 1):
            raise ValueError(f"a {self.likelihood} likelihood needs a network of "
                             f"{'K ≥ 2 outputs' if self.likelihood == 'categorical' else 'one output'}, "
                             f"not {self.spec.outputs}")

    @property
    def gaussian(self) -> bool:
        return self.likelihood == "gaussian"

    @property
    def categorical(self) -> bool:
        return self.likelihood == "categorical"

    def _logits(self, f: np.ndarray) -> np.ndarray:
        """A categorical model's output rows as one row of K logits per record."""
        return np.asarray(f).reshape(-1, self.spec.outputs)

    def _one_hot(self, y: np.ndarray) -> np.ndarray:
        return np.eye(self.spec.outputs)[np.asarray(y).astype(int)]

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
        """The prediction error whose multiple by `error_scale` is ∂ℓ/∂f: f − y, sigmoid(f) − y, or
        softmax(f) − onehot(y) (one per output row)."""
        if self.categorical:
            return (softmax(self._logits(f), axis=1) - self._one_hot(y)).ravel()
        return f - y if self.gaussian else expit(f) - y

    @property
    def error_scale(self) -> float:
        """∂ℓ/∂f = error_scale · error: 1/σ², or 1."""
        return self.noise_std ** -2 if self.gaussian else 1.0

    def weigh(self, rows: np.ndarray, f: np.ndarray | None) -> tuple[np.ndarray, float]:
        """(R, s) with Σ_i w_i r_i r_iᵀ = s·RᵀR for rows r_i (Jacobian rows, or a layer's sensitivities)
        and the output Hessian w_i = ∂²ℓ/∂f²: 1/σ² for every record (R = rows), or p_i(1 − p_i)
        (R = √w·rows, s = 1). For K classes a record's K rows r_i (K × ·) have the output Hessian
        W_i = diag(p_i) − p_ip_iᵀ = A_iᵀA_i with A_i = diag(√p_i)(I − 1p_iᵀ) (Σ p_i = 1), so R_i = A_i r_i:
        each row k becomes √p_ik (r_ik − Σ_j p_ij r_ij)."""
        if self.gaussian:
            return rows, self.noise_std ** -2
        if self.categorical:
            p = softmax(self._logits(f), axis=1)
            blocks = rows.reshape(p.shape + rows.shape[1:])
            trailing = (1,) * (rows.ndim - 1)
            mixed = np.einsum("ik,ik...->i...", p, blocks)[:, None]
            return (np.sqrt(p).reshape(p.shape + trailing) * (blocks - mixed)).reshape(rows.shape), 1.0
        weight = expit(f) * expit(-f)
        return rows * np.sqrt(weight).reshape((-1,) + (1,) * (rows.ndim - 1)), 1.0

    def output_factor(self, f: np.ndarray) -> np.ndarray:
        """A categorical model's B_i with B_iᵀB_i = W_i = diag(p_i) − p_ip_iᵀ, (n, K − 1, K): W_i has rank K − 1
        (W_i 1 = 0), so K − 1 rows suffice where `weigh` uses K. B_i is the transposed Cholesky factor of the
        multinomial covariance (Tanabe & Sagae, 1992) with the record's most likely class ordered last: with
        r_k = Σ_{j>k} p_j, row k holds √(p_k r_k / r_(k−1)) at k and −p_j √(p_k / (r_(k−1) r_k)) at j > k, and
        every r_k it divides by is at least the largest p_ij ≥ 1/K. Backpropagating these rows as the seeds
        of the output gives a layer's weighted sensitivities directly (model/curvature.py)."""
        p = softmax(self._logits(f), axis=1)
        n, k = p.shape
        order = np.tile(np.arange(k), (n, 1))  # a transposition: the most likely class and the last swapped
        top = np.argmax(p, axis=1)
        order[np.arange(n), top], order[:, -1] = k - 1, top
        q = np.take_along_axis(p, order, axis=1)
        after = np.cumsum(q[:, ::-1], axis=1)[:, ::-1]        # Σ_{j≥k} q_j: r_(k−1) at column k
        before, rest = after[:, :-1], after[:, 1:]             # r_(k−1) and r_k of rows k = 1 … K − 1
        head = q[:, : k - 1]
        rows = -q[:, None, :] * np.sqrt(head / (before * rest))[:, :, None]          # (n, K−1, K): j > k
        columns = np.arange(k)
        rows = np.where(columns[None, None, :] > columns[: k - 1, None], rows, 0.0)
        rows[:, columns[: k - 1], columns[: k - 1]] = np.sqrt(head * rest / before)
        return np.take_along_axis(rows, order[:, None, :], axis=2)  # back to the classes' own order

    def output_hessians(self, f: np.ndarray) -> np.ndarray:
        """A categorical model's W_i = diag(p_i) − p_ip_iᵀ per record, (n, K, K)."""
        p = softmax(self._logits(f), axis=1)
        return p[:, :, None] * np.eye(p.shape[1]) - p[:, :, None] * p[:, None, :]

    def output_hessian_times(self, f: np.ndarray, u: np.ndarray) -> np.ndarray:
        """W u for the output rows' vector u: u/σ², p(1 − p)·u, or per record (diag(p) − ppᵀ) u."""
        if self.gaussian:
            return u * self.noise_std ** -2
        if self.categorical:
            p, blocks = softmax(self._logits(f), axis=1), self._logits(u)
            return (p * (blocks - np.sum(p * blocks, axis=1, keepdims=True))).ravel()
        return expit(f) * expit(-f) * u

    def loss(self, f: np.ndarray, y: np.ndarray) -> float:
        """Σ_i ℓ(f_i, y_i) up to a constant: Σ (y − f)²/2σ², Σ log(1 + e^f) − y f, or
        Σ log Σ_k e^(f_k) − f_y (exact for the two classifiers)."""
        if self.categorical:
            logits = self._logits(f)
            return float(-np.sum(log_softmax(logits, axis=1)[np.arange(len(logits)), np.asarray(y).astype(int)]))
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
        probability of the class)."""
        if self.categorical:
            return metrics.categorical_nll(y, self._logits(mean), self._logits(var))
        return metrics.gaussian_nll(y, mean, var) if self.gaussian else metrics.bernoulli_nll(y, mean, var)

    def predictive_kl(self, p: tuple[np.ndarray, np.ndarray], q: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """KL(p's predictive ‖ q's) per input, from each predictive's (mean, var)."""
        if self.categorical:
            return metrics.categorical_kl(*map(self._logits, p), *map(self._logits, q))
        return metrics.predictive_kl(*p, *q) if self.gaussian else metrics.bernoulli_kl(*p, *q)

    def class_probabilities(self, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """A classifier's predictive class probabilities per record (probit approximation): p(y = 1) for
        a Bernoulli likelihood (n,), and (n, K) for a categorical one."""
        if self.categorical:
            return metrics.class_probabilities(self._logits(mean), self._logits(var))
        if self.gaussian:
            raise ValueError("a gaussian likelihood predicts a real target, not classes")
        return metrics.probability(mean, var)


def build_model(section: Model, input_dim: int, classes: int = 1) -> RegressionModel:
    """The model that params.yaml `model` describes, for inputs of `input_dim` features; a categorical
    likelihood's network has one output per class of the target (`classes`)."""
    outputs = classes if section.likelihood == "categorical" else 1
    return RegressionModel(MLPSpec(input_dim, tuple(section.hidden), section.activation, outputs),
                           section.prior_precision, section.noise_std, section.likelihood)


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
