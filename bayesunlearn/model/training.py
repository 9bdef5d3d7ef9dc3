"""MAP training: full-batch Adam to find a basin, then a second-order polish to ∇L(θ*) ≈ 0.

The Laplace approximation and the Newton-step unlearning both assume θ* is a
mode, so training ends with a polish in float64 and reports the final gradient
norm, against `train.grad_tolerance`, instead of trusting a fixed step count.
For networks small enough to hold a P × P matrix the polish is
Levenberg–Marquardt on the GGN (where L-BFGS needed thousands of steps here),
by default (`newton`) continued on the exact Hessian, which converges where the
GGN alone crawls (docs/methods.md, "Training to a mode"); larger networks use
L-BFGS.
"""

from __future__ import annotations

import functools
import numpy as np

from bayesunlearn.model.tf import tf, tfp
from bayesunlearn.model.autodiff import as_tensor, forward, jacobians, log_joint, nll_hessian_graph
from bayesunlearn.model.likelihood import RegressionModel, objective
from bayesunlearn.io.sections import Train


def _loss(model: RegressionModel, theta: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    return -log_joint(model, theta, x, y)


@functools.cache
def _adam(model: RegressionModel, jit_compile: bool = True):
    """Full-batch Adam in one while loop. XLA (jit_compile) was ~10× faster here and is
    deterministic run to run; `bench.compute` measures both side by side."""

    loss = functools.partial(_loss, model)

    @tf.function(jit_compile=jit_compile)
    def adam(theta, x, y, steps, lr):
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        n = tf.cast(tf.shape(x)[0], tf.float64)

        def body(i, theta, m, v):
            with tf.GradientTape() as tape:
                tape.watch(theta)
                value = loss(theta, x, y) / n  # per-record scale keeps lr meaningful across n
            g = tape.gradient(value, theta)
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            t = tf.cast(i + 1, tf.float64)
            step = lr * (m / (1 - beta1 ** t)) / (tf.sqrt(v / (1 - beta2 ** t)) + eps)
            return i + 1, theta - step, m, v

        zeros = tf.zeros_like(theta)
        _, theta, _, _ = tf.while_loop(lambda i, *_: i < steps, body, (tf.constant(0), theta, zeros, zeros))
        return theta

    return adam


def run_adam(model: RegressionModel, x: tf.Tensor, y: tf.Tensor, theta: tf.Tensor, steps: int,
             learning_rate: float, jit_compile: bool = True) -> tf.Tensor:
    """`steps` full-batch Adam steps from θ (traced once per model and input shape)."""
    return _adam(model, jit_compile)(theta, x, y, tf.constant(steps), tf.constant(learning_rate, tf.float64))


def _categorical_weighted(jac: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """W with WᵀW = Σ_i J_iᵀ(diag(p_i) − p_ip_iᵀ)J_i, for J's (K, P) record blocks J_i and p_i = softmax(f_i):
    W_i = diag(√p_i)(J_i − Σ_k p_ik J_ik), the factor RegressionModel.weigh uses, for all records at once
    rather than a K × K product per record."""
    p = tf.nn.softmax(logits, axis=1)
    blocks = tf.reshape(jac, [tf.shape(p)[0], tf.shape(p)[1], -1])
    mixed = tf.einsum("ik,ikp->ip", p, blocks)
    return tf.reshape(tf.sqrt(p)[:, :, None] * (blocks - mixed[:, None, :]), tf.shape(jac))


@functools.cache
def _compiled(model: RegressionModel):
    """Traced once per model and input shape, so repeated fits run warm."""

    loss = functools.partial(_loss, model)
    prior = model.prior_precision

    @tf.function
    def lbfgs(theta, x, y, max_iterations, tolerance):
        def value_and_gradient(t):
            return tfp.math.value_and_gradient(lambda s: loss(s, x, y), t)

        result = tfp.optimizer.lbfgs_minimize(value_and_gradient, initial_position=theta,
                                              max_iterations=max_iterations, tolerance=tolerance,
                                              num_correction_pairs=20)
        return result.position, result.converged, result.num_iterations, result.objective_gradient

    @tf.function
    def gradient(theta, x, y):
        return tfp.math.value_and_gradient(lambda s: loss(s, x, y), theta)

    @tf.function
    def ggn(theta, x, y):
        """L, ∇L, the GGN of L and its diagonal (the Marquardt scaling of the damping)."""
        value, grad = gradient(theta, x, y)
        jac = jacobians(model.spec, theta, x)
        if model.gaussian:
            matrix = tf.matmul(jac, jac, transpose_a=True) / model.noise_std ** 2
        elif model.categorical:
            weighted = _categorical_weighted(jac, forward(model.spec, theta, x))
            matrix = tf.matmul(weighted, weighted, transpose_a=True)
        else:  # output Hessian p(1 − p) of the Bernoulli likelihood
            f = forward(model.spec, theta, x)
            matrix = tf.matmul(jac * (tf.sigmoid(f) * tf.sigmoid(-f))[:, None], jac, transpose_a=True)
        matrix += prior * tf.eye(tf.shape(theta)[0], dtype=tf.float64)
        return value, grad, matrix, tf.linalg.diag_part(matrix)

    @tf.function
    def hessian(theta, x, y):
        """L, ∇L, the exact Hessian of L, and a uniform damping scale, the mean |H_ii|: H + λ·s·I lifts every
        eigenvalue alike, so a moderate λ makes an indefinite H positive definite (a diagonal scaling
        barely lifts directions of small H_ii, and needed 4× the trials here)."""
        nll_hessian, nll_grad = nll_hessian_graph(model)(theta, x, y)
        matrix = nll_hessian + prior * tf.eye(tf.shape(theta)[0], dtype=tf.float64)
        scale = tf.fill(tf.shape(theta), tf.reduce_mean(tf.abs(tf.linalg.diag_part(matrix))))
        return loss(theta, x, y), nll_grad + prior * theta, matrix, scale

    @tf.function
    def trial(theta, grad, matrix, scale, damping, x, y):
        """One damped step: (M + λ·diag(scale)) δ = −∇L; NaN where the damped M is not positive definite."""
        damped = matrix + damping * tf.linalg.diag(scale)
        candidate = theta - tf.linalg.cholesky_solve(tf.linalg.cholesky(damped), grad[:, None])[:, 0]
        return candidate, loss(candidate, x, y)

    return lbfgs, {"lm": [ggn], "newton": [ggn, hessian]}, trial


def _levenberg_marquardt(curvatures: list, trial, theta, x, y, config: Train) -> tuple[tf.Tensor, int, bool]:
    """Damped second-order steps: a step that lowers L is taken and the damping relaxed; otherwise (or when
    the damped matrix is not positive definite) the damping grows. Each trial step counts as one of
    `polish_iterations`; the curvature is recomputed only after a step is taken.

    `curvatures` is [GGN] (`lm`) or [GGN, exact Hessian] (`newton`). The GGN is positive definite
    everywhere, so it makes progress far from a mode, but it ignores the residual term of the Hessian:
    near the mode it converges only linearly, and it cannot tell a saddle from a minimum. So `newton`
    moves to the exact Hessian after half the budget: its damping grows until H + λ·s·I is positive
    definite, which leads off a saddle, and near a minimum its steps converge quadratically. (Moving
    at the first point where H is positive definite, checked by a Hessian per GGN step, took several times
    as long here.)"""
    damping = 1e-3
    curvature, later = curvatures[0], curvatures[1:]
    value, grad, matrix, scale = curvature(theta, x, y)
    for iteration in range(config.polish_iterations):
        if float(tf.norm(grad)) < config.grad_tolerance:
            return theta, iteration, True
        if later and iteration >= config.polish_iterations // 2:
            curvature, later = later[0], []
            value, grad, matrix, scale = curvature(theta, x, y)
        candidate, new_value = trial(theta, grad, matrix, scale, tf.constant(damping, tf.float64), x, y)
        if np.isfinite(candidate.numpy()).all() and np.isfinite(new_value.numpy()) and new_value < value:
            theta, damping = candidate, max(damping / 3.0, 1e-12)
            value, grad, matrix, scale = curvature(theta, x, y)
        else:
            damping *= 4.0
    return theta, config.polish_iterations, bool(float(tf.norm(grad)) < config.grad_tolerance)


def fit_map(model: RegressionModel, x: np.ndarray, y: np.ndarray, theta0: np.ndarray,
            config: Train) -> tuple[np.ndarray, dict]:
    """Minimise L(θ) = −log p(θ) − Σ log p(y_i | x_i, θ) from `theta0`."""
    lbfgs, curvatures, trial = _compiled(model)
    x_t, y_t = as_tensor(x), as_tensor(y)
    theta = as_tensor(theta0)
    if config.adam_steps:
        theta = run_adam(model, x_t, y_t, theta, config.adam_steps, config.learning_rate)
    iterations, converged = 0, False
    if config.polish in curvatures:
        theta, iterations, converged = _levenberg_marquardt(curvatures[config.polish], trial, theta, x_t, y_t,
                                                             config)
    elif config.polish == "lbfgs":
        theta, converged, iterations, _ = lbfgs(theta, x_t, y_t, tf.constant(config.polish_iterations),
                                                tf.constant(config.grad_tolerance, tf.float64))
    theta = theta.numpy()
    value, grad = objective(model, theta, x, y)
    return theta, {"objective": float(value), "grad_norm": float(np.linalg.norm(grad)),
                   "grad_tolerance": config.grad_tolerance, "polish_iterations": int(iterations),
                   "polish_converged": bool(converged)}

