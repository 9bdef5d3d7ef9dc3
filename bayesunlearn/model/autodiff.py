"""The model in TensorFlow, for what needs automatic differentiation: training, VI and the exact Hessian.

The same network as model/network.py (held equal to it by a test), with the
prior and likelihood as TFP distributions, so that MAP training, the exact
Hessian and variational inference share one joint log-density and can never
disagree on the model. Per-example Jacobians for the Levenberg–Marquardt
polish use `tf.vectorized_map`, about 40× faster than `GradientTape.jacobian`.
"""

from __future__ import annotations

import functools

import numpy as np

from bayesunlearn.model.likelihood import RegressionModel
from bayesunlearn.model.network import MLPSpec
from bayesunlearn.model.tf import tf, tfp

tfd = tfp.distributions
ACTIVATIONS = {"tanh": tf.tanh, "relu": tf.nn.relu, "softplus": tf.nn.softplus}


def as_tensor(a: np.ndarray) -> tf.Tensor:
    return tf.convert_to_tensor(np.asarray(a, dtype=np.float64))


def initial_theta(spec: MLPSpec, seed: int) -> np.ndarray:
    """LeCun-normal weights and zero biases from TensorFlow's stateless generator."""
    parts = []
    for layer, (fan_in, fan_out) in enumerate(spec.shapes):
        w = tf.random.stateless_normal([fan_in * fan_out], seed=[seed, layer], dtype=tf.float64)
        parts += [w.numpy() / np.sqrt(fan_in), np.zeros(fan_out)]
    return np.concatenate(parts)


def forward(spec: MLPSpec, theta: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """Network output f(x, θ): shape (n,) for one output, and the (n, K) logits for K, one row per record
    as a TFP distribution's batch wants them (network.outputs is their record-major flattening)."""
    act, offset, h = ACTIVATIONS[spec.activation], 0, x
    for number, (fan_in, fan_out) in enumerate(spec.shapes):
        w = tf.reshape(theta[offset: offset + fan_in * fan_out], [fan_in, fan_out])
        offset += fan_in * fan_out
        b = theta[offset: offset + fan_out]
        offset += fan_out
        h = h @ w + b
        if number < len(spec.shapes) - 1:
            h = act(h)
    return h[:, 0] if spec.outputs == 1 else h


def jacobians(spec: MLPSpec, theta: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """J with rows J_i = ∂f(x_i, θ)/∂θ, shape (n·K, P), inside a TensorFlow graph: for K outputs each record's
    K rows in turn (record-major), the row order of network.outputs_and_jacobians."""
    k = spec.outputs

    def one(xi):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            out = forward(spec, theta, xi[None, :])[0]
        return tape.gradient(out, theta) if k == 1 else tape.jacobian(out, theta)  # (P,) or (K, P)

    jac = tf.vectorized_map(one, x)
    return jac if k == 1 else tf.reshape(jac, [-1, spec.n_params])


def prior(model: RegressionModel) -> tfd.Distribution:
    p = model.spec.n_params
    scale = tf.fill([p], tf.constant(model.prior_precision ** -0.5, tf.float64))
    return tfd.MultivariateNormalDiag(loc=tf.zeros(p, tf.float64), scale_diag=scale)


def likelihood(model: RegressionModel, theta: tf.Tensor, x: tf.Tensor) -> tfd.Distribution:
    """Per-example distribution of y given θ: a batch of n Normals, of n Bernoullis with logits f, or of n
    Categoricals with the K logits f_i. Labels arrive as float64 (0.0 … K − 1, as everywhere in the project);
    the Categorical's float dtype lets its log_prob take them as they are (TFP casts them to int32)."""
    if model.categorical:
        return tfd.Categorical(logits=forward(model.spec, theta, x), dtype=tf.float64)
    if not model.gaussian:
        return tfd.Bernoulli(logits=forward(model.spec, theta, x), dtype=tf.float64)
    return tfd.Normal(loc=forward(model.spec, theta, x), scale=tf.constant(model.noise_std, tf.float64))


def log_joint(model: RegressionModel, theta: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """log p(θ) + Σ_i log p(y_i | x_i, θ)."""
    return prior(model).log_prob(theta) + tf.reduce_sum(likelihood(model, theta, x).log_prob(y))


def per_example_nll(model: RegressionModel, theta: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    return -likelihood(model, theta, x).log_prob(y)


# Above this many parameters the dense Hessian uses the while-loop Jacobian: the vectorised
# (pfor) form ran out of memory at 10k parameters (docs/design.md, measured facts).
PFOR_MAX_PARAMS = 2000


@functools.cache
def nll_hessian_graph(model: RegressionModel):
    use_pfor = model.spec.n_params <= PFOR_MAX_PARAMS

    @tf.function(reduce_retracing=True)
    def run(theta, x, y):
        with tf.GradientTape() as outer:
            outer.watch(theta)
            with tf.GradientTape() as inner:
                inner.watch(theta)
                nll = tf.reduce_sum(per_example_nll(model, theta, x, y))
            grad = inner.gradient(nll, theta)
        hessian = outer.jacobian(grad, theta, experimental_use_pfor=use_pfor)
        return 0.5 * (hessian + tf.transpose(hessian)), grad

    return run


def nll_hessian(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Exact Hessian and gradient of Σ_i −log p(y_i | x_i, θ). The GGN leaves out Σ_i (∂ℓ/∂f_i) ∇²f_i, so
    unlike it the exact Hessian need not be positive definite."""
    if len(x) == 0:
        p = model.spec.n_params
        return np.zeros((p, p)), np.zeros(p)
    hessian, grad = nll_hessian_graph(model)(as_tensor(theta), as_tensor(x), as_tensor(y))
    return np.array(hessian), grad.numpy()  # a writable copy: callers add the prior in place
