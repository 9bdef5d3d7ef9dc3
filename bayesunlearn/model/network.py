"""A multilayer perceptron as a pure function f(x, θ) of one flat float64 vector θ, in NumPy.

Keeping θ flat makes every posterior (Laplace, VI) a distribution over one
vector, and per-example Jacobians J_i = ∂f(x_i, θ)/∂θ plain (n, P) matrices.
The network is evaluated and differentiated here by explicit backpropagation,
without TensorFlow: everything a posterior, an unlearning step or the gate
needs (outputs, Jacobians, vector–Jacobian products) costs no TensorFlow
start-up (about 5 s per process). TensorFlow's copy of the same function
(model/autodiff.py) serves training and VI, which need automatic
differentiation through optimisers; a test holds the two equal to 1e-12.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


# activation: (function, derivative as a function of the pre-activation z and the activation h)
ACTIVATIONS = {
    "tanh": (np.tanh, lambda z, h: 1.0 - h * h),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z, h: (z > 0).astype(np.float64)),
    "softplus": (_softplus, lambda z, h: _sigmoid(z)),
}


@dataclass(frozen=True)
class MLPSpec:
    """Layer sizes of the network: `outputs` is 1 (a regression or a binary logit) or K ≥ 2 (the K logits
    of a categorical likelihood). A network of K outputs gives each record K output rows, record-major:
    its outputs are the flat (n·K,) vector and its Jacobian (n·K, P), so every sum over output rows (the GGN,
    the NLL gradient, a predictive variance) is the same code for one output and for K."""

    input_dim: int
    hidden: tuple[int, ...]
    activation: str = "tanh"
    outputs: int = 1

    def __post_init__(self) -> None:
        if self.input_dim < 1 or self.outputs < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"layer sizes must be positive, got input_dim={self.input_dim}, hidden={self.hidden}, "
                             f"outputs={self.outputs}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    @property
    def layer_sizes(self) -> list[int]:
        return [self.input_dim, *self.hidden, self.outputs]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(fan_in, fan_out) of each layer; θ holds each layer's weights (row-major) and then its biases."""
        sizes = self.layer_sizes
        return list(zip(sizes[:-1], sizes[1:], strict=False))

    @property
    def n_params(self) -> int:
        return sum((a + 1) * b for a, b in self.shapes)

    @property
    def n_last_layer(self) -> int:
        """Parameters of the output layer (weights and bias): the tail of θ."""
        return (self.layer_sizes[-2] + 1) * self.outputs

    def to_dict(self) -> dict:
        out = {**asdict(self), "hidden": list(self.hidden)}
        if self.outputs == 1:  # absent for one output, so earlier model files keep their bytes
            del out["outputs"]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> MLPSpec:
        return cls(int(d["input_dim"]), tuple(d["hidden"]), d.get("activation", "tanh"), int(d.get("outputs", 1)))

    def init(self, seed: int) -> np.ndarray:
        """LeCun-normal weights and zero biases, a deterministic function of `seed` (TensorFlow's stateless
        generator: the same numbers on every machine and in every process)."""
        from bayesunlearn.model.autodiff import initial_theta

        return initial_theta(self, seed)


def layers(spec: MLPSpec, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W, b) of each layer as views into θ."""
    out, offset = [], 0
    for fan_in, fan_out in spec.shapes:
        w = theta[offset: offset + fan_in * fan_out].reshape(fan_in, fan_out)
        offset += fan_in * fan_out
        out.append((w, theta[offset: offset + fan_out]))
        offset += fan_out
    return out


def _forward(spec: MLPSpec, theta: np.ndarray, x: np.ndarray):
    """Outputs, and per layer its input and its hidden pre-activations, for backpropagation."""
    act = ACTIVATIONS[spec.activation][0]
    params = layers(spec, theta)
    inputs, pre = [], []
    h = x
    for w, b in params[:-1]:
        inputs.append(h)
        z = h @ w
        z += b
        pre.append(z)
        h = act(z)
    inputs.append(h)
    w, b = params[-1]
    return (h @ w + b).ravel(), inputs, pre, params  # record-major: (n·K,), and (n,) for one output


def _output_row_seed(spec: MLPSpec, n: int) -> np.ndarray:
    """The seed of the backward pass that gives every output row its own sensitivities: ones for one output,
    and the identity of each record's K outputs for K (K consecutive rows per record)."""
    k = spec.outputs
    return np.ones((n, 1)) if k == 1 else np.tile(np.eye(k), (n, 1))


def _backward(spec: MLPSpec, inputs, pre, params, delta: np.ndarray, rows_per_record: int = 1):
    """Per layer (last first): the output's sensitivity δ to that layer's pre-activations, for the rows of
    `delta`: `rows_per_record` consecutive rows per record of `inputs` and `pre` (the activation's slope is
    formed once per record, not once per row; the products are the same numbers)."""
    derivative = ACTIVATIONS[spec.activation][1]
    deltas = [delta]
    for layer in range(len(params) - 1, 0, -1):
        w, _ = params[layer]
        slope = derivative(pre[layer - 1], inputs[layer])
        delta = delta @ w.T
        rows = delta.reshape(len(slope), rows_per_record, delta.shape[1])
        np.multiply(rows, slope[:, None, :], out=rows)  # in place: no second array of every row
        deltas.append(delta)
    return deltas[::-1]


def outputs(spec: MLPSpec, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """f(x_i, θ) for every row of x."""
    return _forward(spec, np.asarray(theta, dtype=np.float64), np.asarray(x, dtype=np.float64))[0]


def outputs_and_jacobians(spec: MLPSpec, theta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(x_i, θ) and J_i = ∂f(x_i, θ)/∂θ for every row of x: (n·K,) and (n·K, P)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0), np.zeros((0, spec.n_params))
    f, inputs, pre, params = _forward(spec, np.asarray(theta, dtype=np.float64), x)
    deltas = _backward(spec, inputs, pre, params, _output_row_seed(spec, n), spec.outputs)
    return f, _jacobian_rows(spec, inputs, deltas, spec.outputs)


def _jacobian_rows(spec: MLPSpec, inputs, deltas, per_record: int) -> np.ndarray:
    """The Jacobian rows (rows, P) of the sensitivities `deltas`, `per_record` consecutive rows per record."""
    n = len(inputs[0])
    jac = np.empty((n, per_record, spec.n_params))
    offset = 0
    for h, delta, (fan_in, fan_out) in zip(inputs, deltas, spec.shapes, strict=True):
        delta = delta.reshape(n, per_record, fan_out)  # each record's rows share its h
        weights = jac[:, :, offset: offset + fan_in * fan_out].reshape(n, per_record, fan_in, fan_out)  # a view
        np.multiply(h[:, None, :, None], delta[:, :, None, :], out=weights)  # h δᵀ, written into J
        offset += fan_in * fan_out
        jac[:, :, offset: offset + fan_out] = delta               # ∂f/∂b = δ
        offset += fan_out
    return jac.reshape(n * per_record, spec.n_params)


def outputs_factor_rows_and_vjp(spec: MLPSpec, theta: np.ndarray, x: np.ndarray, seeds_of
                                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f, and for (B, v) = seeds_of(f) (`inputs_and_pullbacks`' seeds: each record's output factor B_i (r, K)
    and its weights v_i (1, K)) the rows B_i J_i (n·r, P) and Jᵀv: one forward and two backward passes; J
    itself (n·K rows) is never formed."""
    x = np.asarray(x, dtype=np.float64)
    f, inputs, (rows, weights) = inputs_and_pullbacks(spec, theta, x, seeds_of)
    return f, _jacobian_rows(spec, inputs, rows, len(rows[-1]) // len(x)), _vjp(inputs, weights)


def outputs_and_features(spec: MLPSpec, theta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(x_i, θ) and the last hidden layer's outputs (the output layer's inputs), (n, fan_in), by one forward pass."""
    f, inputs, _, _ = _forward(spec, np.asarray(theta, dtype=np.float64), np.asarray(x, dtype=np.float64))
    return f, inputs[-1]


def inputs_and_sensitivities(spec: MLPSpec, theta: np.ndarray, x: np.ndarray
                             ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """f(x_i, θ) and, per layer, each record's inputs h_i (n, fan_in) and each output row's sensitivities δ
    (n·K, fan_out) to the layer's pre-activations: a record's K Jacobian rows there are h_i δᵀ (weights) and δ
    (bias), one per output row. The inputs are a record's, shared by its K rows: formed and returned once."""
    x = np.asarray(x, dtype=np.float64)
    f, inputs, pre, params = _forward(spec, np.asarray(theta, dtype=np.float64), x)
    return f, inputs, _backward(spec, inputs, pre, params, _output_row_seed(spec, len(x)), spec.outputs)


def inputs_and_pullbacks(spec: MLPSpec, theta: np.ndarray, x: np.ndarray, seeds_of
                         ) -> tuple[np.ndarray, list[np.ndarray], list[list[np.ndarray]]]:
    """f(x_i, θ), per layer each record's inputs h_i (n, fan_in), and for each seed of `seeds_of(f)` (n, r, K:
    r rows per record, each a weighting of the record's K outputs) per layer the sensitivities of its rows
    to the layer's pre-activations (n·r, fan_out): one forward pass, one backward pass per seed. Backprop is
    linear in the seed, so a row is the same weighting of the record's K rows of `inputs_and_sensitivities`
    (to rounding) without forming them."""
    x = np.asarray(x, dtype=np.float64)
    f, inputs, pre, params = _forward(spec, np.asarray(theta, dtype=np.float64), x)
    return f, inputs, [_backward(spec, inputs, pre, params, seed.reshape(-1, spec.outputs), seed.shape[1])
                       for seed in seeds_of(f)]


def outputs_and_vjp(spec: MLPSpec, theta: np.ndarray, x: np.ndarray, weights_of) -> tuple[np.ndarray, np.ndarray]:
    """f(x_i, θ) and Jᵀv with v = weights_of(f) (one weight per output row): a gradient of Σ_i ℓ(f_i) in one
    backward pass, without forming J (memory n × width, not n × P)."""
    x = np.asarray(x, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    if len(x) == 0:
        return np.zeros(0), np.zeros(spec.n_params)
    f, inputs, pre, params = _forward(spec, theta, x)
    seed = np.asarray(weights_of(f), dtype=np.float64).reshape(len(x), spec.outputs)
    return f, _pullback(spec, inputs, pre, params, seed)


def _pullback(spec: MLPSpec, inputs, pre, params, seed: np.ndarray) -> np.ndarray:
    """Jᵀv for the rows' seeds v (n, K), by one backward pass."""
    return _vjp(inputs, _backward(spec, inputs, pre, params, seed))


def _vjp(inputs, deltas) -> np.ndarray:
    """Jᵀv from the sensitivities of one row per record whose seed is v."""
    parts = []
    for h, delta in zip(inputs, deltas, strict=True):
        parts += [(h.T @ delta).ravel(), delta.sum(axis=0)]
    return np.concatenate(parts)


def gauss_newton_product(spec: MLPSpec, theta: np.ndarray, x: np.ndarray, v: np.ndarray, middle) -> np.ndarray:
    """Jᵀ M (J v) for the rows of x, with M u = middle(f, u) applied to the output rows' tangents u = Jv (n·K,):
    one forward pass carrying the tangent (forward mode) and one backward pass, without forming J (memory
    n × width). With M the likelihood's output Hessian this is the GGN times v."""
    x = np.asarray(x, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    if len(x) == 0:
        return np.zeros(spec.n_params)
    f, inputs, pre, params = _forward(spec, theta, x)
    derivative = ACTIVATIONS[spec.activation][1]
    tangent = np.zeros_like(x)  # of the layer's input
    for layer, ((w, _), (dw, db)) in enumerate(zip(params, layers(spec, np.asarray(v, dtype=np.float64)),
                                                   strict=True)):
        dz = tangent @ w + inputs[layer] @ dw + db
        if layer < len(pre):
            tangent = derivative(pre[layer], inputs[layer + 1]) * dz
    seed = np.asarray(middle(f, dz.ravel()), dtype=np.float64).reshape(len(x), spec.outputs)
    return _pullback(spec, inputs, pre, params, seed)
