"""Curvature of the data term: per-example Jacobians, GGN (whole, block or diagonal), exact Hessian, NLL gradients.

For a Gaussian likelihood the GGN of the data term is Σ_i J_iᵀJ_i / σ², where
J_i = ∂f(x_i, θ)/∂θ. Jacobians are computed with `tf.vectorized_map` over
examples, which was about 40× faster than `GradientTape.jacobian` here. The
exact Hessian adds Σ_i r_i ∇²f_i / σ² and so need not be positive definite.

J is (n, P): at 10k parameters and n = 50k that is 4 GB. Above `JACOBIAN_BUDGET`
entries the GGN, its diagonal and the gradient are accumulated over row
batches (the full GGN with an in-place SYRK), so memory is one batch of J plus
the result. Smaller problems take the one-shot path, unchanged.
"""

from __future__ import annotations

import functools

import numpy as np

from bayesunlearn.model.tf import tf
from bayesunlearn.numerics import dense
from bayesunlearn.model.likelihood import RegressionModel, as_tensor
from bayesunlearn.model.network import MLPSpec, forward

JACOBIAN_BUDGET = 2**21  # float64 entries of J per batch: 16 MB, and TF's per-example intermediates
# several times that (at 64 MB batches they added ~500 MB at 10k parameters; 16 MB batches were also faster)


def row_batches(n: int, n_params: int) -> list[slice]:
    """Row slices whose Jacobians fit `JACOBIAN_BUDGET`; one slice when the whole J does."""
    size = max(1, JACOBIAN_BUDGET // max(1, n_params))
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def jacobians(spec: MLPSpec, theta: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """J with rows J_i = ∂f(x_i, θ)/∂θ, shape (n, P)."""

    def one(xi):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            out = forward(spec, theta, xi[None, :])[0]
        return tape.gradient(out, theta)

    return tf.vectorized_map(one, x)


@functools.cache
def _outputs(spec: MLPSpec):
    return tf.function(lambda theta, x: forward(spec, theta, x), reduce_retracing=True)


def network_outputs(spec: MLPSpec, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """f(x_i, θ) for every row of x."""
    return _outputs(spec)(as_tensor(theta), as_tensor(x)).numpy()


@functools.cache
def _outputs_and_jacobians(spec: MLPSpec):
    @tf.function(reduce_retracing=True)  # called on grids, test and forgotten sets of many sizes
    def run(theta, x):
        return forward(spec, theta, x), jacobians(spec, theta, x)

    return run


def outputs_and_jacobians(spec: MLPSpec, theta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f(x_i, θ) and J_i for every row of x, as float64 numpy arrays."""
    if len(x) == 0:
        return np.zeros(0), np.zeros((0, spec.n_params))
    f, jac = _outputs_and_jacobians(spec)(as_tensor(theta), as_tensor(x))
    return f.numpy(), jac.numpy()


@functools.cache
def _data_curvature(model: RegressionModel):
    @tf.function(reduce_retracing=True)
    def run(theta, x, y):
        f, jac = forward(model.spec, theta, x), jacobians(model.spec, theta, x)
        inv_var = tf.constant(model.noise_std ** -2, tf.float64)
        return inv_var * tf.matmul(jac, jac, transpose_a=True), inv_var * tf.linalg.matvec(jac, f - y, adjoint_a=True)

    return run


def data_curvature(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """GGN H = JᵀJ/σ² and NLL gradient g = Jᵀ(f − y)/σ², summed over the given records.

    Small problems: both products inside TensorFlow (handing J to numpy first made
    BLAS and TF's thread pools fight over the two cores: 7 ms instead of 1 ms).
    Large ones: batches of J, accumulated in place by SYRK (half a GEMM's flops,
    and ~2.5× faster than TF's matmul at 10k parameters here).
    """
    p = model.spec.n_params
    if len(x) == 0:
        return np.zeros((p, p)), np.zeros(p)
    batches = row_batches(len(x), p)
    if len(batches) == 1:
        hessian, gradient = _data_curvature(model)(as_tensor(theta), as_tensor(x), as_tensor(y))
        return np.array(hessian), gradient.numpy()
    inv_var = model.noise_std ** -2
    hessian, gradient = np.zeros((p, p), order="F"), np.zeros(p)
    for rows in batches:
        f, jac = outputs_and_jacobians(model.spec, theta, x[rows])
        dense.rank_update(hessian, jac.T, inv_var, mirror=False)
        gradient += inv_var * (jac.T @ (f - y[rows]))
    return dense.mirror_lower(hessian), gradient


# Above this many parameters the dense Hessian uses the while-loop Jacobian: the vectorised
# (pfor) form ran out of memory at 10k parameters here (DESIGN.md §5).
PFOR_MAX_PARAMS = 2000


@functools.cache
def _nll_hessian(model: RegressionModel):
    use_pfor = model.spec.n_params <= PFOR_MAX_PARAMS

    @tf.function(reduce_retracing=True)
    def run(theta, x, y):
        with tf.GradientTape() as outer:
            outer.watch(theta)
            with tf.GradientTape() as inner:
                inner.watch(theta)
                nll = tf.reduce_sum(model.per_example_nll(theta, x, y))
            grad = inner.gradient(nll, theta)
        hessian = outer.jacobian(grad, theta, experimental_use_pfor=use_pfor)
        return 0.5 * (hessian + tf.transpose(hessian)), grad

    return run


def nll_hessian(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Exact Hessian and gradient of Σ_i −log p(y_i | x_i, θ)."""
    if len(x) == 0:
        p = model.spec.n_params
        return np.zeros((p, p)), np.zeros(p)
    hessian, grad = _nll_hessian(model)(as_tensor(theta), as_tensor(x), as_tensor(y))
    return np.array(hessian), grad.numpy()  # a writable copy: callers add the prior in place


def restricted_ggn(model: RegressionModel, theta: np.ndarray, x: np.ndarray, y: np.ndarray, index: slice,
                   diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
    """The GGN over the parameters in `index` — its diagonal, or the dense block — and the NLL gradient
    there, accumulated over row batches of J (one batch unless J is large). For the output layer the
    block is exact: the network's output is linear in it."""
    size = len(range(*index.indices(model.spec.n_params)))
    total = (np.zeros(size) if diagonal else np.zeros((size, size)), np.zeros(size))
    for number, rows in enumerate(row_batches(len(x), model.spec.n_params)):
        f, jac = outputs_and_jacobians(model.spec, theta, x[rows])
        jac, inv_var = jac[:, index], model.noise_std ** -2
        grad = inv_var * (jac.T @ (f - y[rows]))
        block = inv_var * np.einsum("ij,ij->j", jac, jac) if diagonal else inv_var * (jac.T @ jac)
        total = (block, grad) if number == 0 else (total[0] + block, total[1] + grad)
    return total
