"""A multilayer perceptron as a pure function f(x, θ) of one flat float64 vector θ.

Keeping θ flat makes every posterior (Laplace, VI) a distribution over one
vector, and per-example Jacobians J_i = ∂f(x_i, θ)/∂θ plain (n, P) matrices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from bayesunlearn.model.tf import tf

ACTIVATIONS = {"tanh": tf.tanh, "relu": tf.nn.relu, "softplus": tf.nn.softplus}


@dataclass(frozen=True)
class MLPSpec:
    """Layer sizes of a scalar-output regression network."""

    input_dim: int
    hidden: tuple[int, ...]
    activation: str = "tanh"

    def __post_init__(self) -> None:
        if self.input_dim < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"layer sizes must be positive, got input_dim={self.input_dim}, hidden={self.hidden}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    @property
    def layer_sizes(self) -> list[int]:
        return [self.input_dim, *self.hidden, 1]

    @property
    def n_params(self) -> int:
        sizes = self.layer_sizes
        return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))

    @property
    def n_last_layer(self) -> int:
        """Parameters of the output layer (weights and bias): the tail of θ."""
        return self.layer_sizes[-2] + 1

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, d: dict) -> MLPSpec:
        return cls(int(d["input_dim"]), tuple(d["hidden"]), d.get("activation", "tanh"))

    def init(self, seed: int) -> np.ndarray:
        """LeCun-normal weights and zero biases, a deterministic function of `seed`."""
        parts = []
        for layer, (fan_in, fan_out) in enumerate(zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=False)):
            w = tf.random.stateless_normal([fan_in * fan_out], seed=[seed, layer], dtype=tf.float64)
            parts += [w.numpy() / np.sqrt(fan_in), np.zeros(fan_out)]
        return np.concatenate(parts)


def _layers(spec: MLPSpec, theta: tf.Tensor) -> list[tuple[tf.Tensor, tf.Tensor]]:
    out, offset = [], 0
    for fan_in, fan_out in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:], strict=False):
        w = tf.reshape(theta[offset: offset + fan_in * fan_out], [fan_in, fan_out])
        offset += fan_in * fan_out
        out.append((w, theta[offset: offset + fan_out]))
        offset += fan_out
    return out


def features(spec: MLPSpec, theta: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Last hidden layer's activations, shape (n, hidden[-1]) (the inputs if there is none)."""
    act = ACTIVATIONS[spec.activation]
    h = x
    for w, b in _layers(spec, theta)[:-1]:
        h = act(h @ w + b)
    return h


def forward(spec: MLPSpec, theta: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Network output f(x, θ), shape (n,)."""
    w, b = _layers(spec, theta)[-1]
    return (features(spec, theta, x) @ w + b)[:, 0]
