"""Compute choices measured side by side in one process: time, agreement, and memory.

- xla: the training loop (full-batch Adam) with and without `jit_compile=True`:
  seconds each, whether XLA results are bit-identical across runs, and how far
  they are from the non-XLA ones;
- jacobians: per-example Jacobians by `tf.vectorized_map` (used), by
  `GradientTape.jacobian`, and by a Python loop of per-example gradients;
- precision: float32 vs float64 for the GGN and the Newton step of a downdate;
- ggn_accumulation: one-shot TF `JᵀJ` vs row batches accumulated in place by SYRK;
- downdate: Woodbury (copying / in place) vs refactorising Λ − UUᵀ, at 2.5k and 10k params.
Peak memory increments are read from VmHWM after resetting it (see bench/scale.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from bench.scale import SIZES, cell_data, memory_mb, reset_peak  # noqa: E402


def best_of(fn, repeats: int = 3) -> tuple[float, object]:
    """Minimum wall time over `repeats` calls after a warm-up call, and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def with_peak(fn) -> tuple[float, float, object]:
    """(seconds, peak MB added over the current RSS, result) of one call."""
    reset_peak()
    before = memory_mb("VmRSS")
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, memory_mb("VmHWM") - before, out


def model_for(size: str):
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    return RegressionModel(MLPSpec(1, SIZES[size]), 1.0, 0.1)


def xla(size: str, n: int, steps: int) -> dict:
    from bayesunlearn.model.autodiff import as_tensor
    from bayesunlearn.model.training import run_adam

    model = model_for(size)
    x, y, _ = cell_data(n, 0, 0)
    args = (model, as_tensor(x), as_tensor(y), as_tensor(model.spec.init(0)), steps, 0.01)
    xla_seconds, a = best_of(lambda: run_adam(*args, jit_compile=True).numpy(), 2)
    again = run_adam(*args, jit_compile=True).numpy()
    graph_seconds, b = best_of(lambda: run_adam(*args, jit_compile=False).numpy(), 1)
    return {"n_params": model.spec.n_params, "n_train": n, "adam_steps": steps, "xla_seconds": xla_seconds,
            "no_xla_seconds": graph_seconds, "xla_speedup": graph_seconds / xla_seconds,
            "xla_bit_identical_across_runs": bool(np.array_equal(a, again)),
            "xla_vs_no_xla_bit_identical": bool(np.array_equal(a, b)),
            "xla_vs_no_xla_max_abs_diff": float(np.max(np.abs(a - b)))}


def jacobian_methods(size: str, n: int) -> dict:
    from bayesunlearn.model.tf import tf

    from bayesunlearn.model.autodiff import as_tensor, forward, jacobians
    from bayesunlearn.model.network import outputs_and_jacobians

    spec = model_for(size).spec
    theta, x = as_tensor(spec.init(0)), as_tensor(cell_data(n, 0, 0)[0])
    vectorized = tf.function(lambda t, xs: jacobians(spec, t, xs))

    @tf.function
    def tape_jacobian(t, xs):
        with tf.GradientTape() as tape:
            tape.watch(t)
            out = forward(spec, t, xs)
        return tape.jacobian(out, t)

    def python_loop():
        rows = []
        for i in range(n):
            with tf.GradientTape() as tape:
                tape.watch(theta)
                out = forward(spec, theta, x[i:i + 1])[0]
            rows.append(tape.gradient(out, theta))
        return tf.stack(rows)

    t_vec, j_vec = best_of(lambda: vectorized(theta, x).numpy())
    t_tape, j_tape = best_of(lambda: tape_jacobian(theta, x).numpy(), 1)
    t_loop, j_loop = best_of(lambda: python_loop().numpy(), 1)
    t_np, j_np = best_of(lambda: outputs_and_jacobians(spec, theta.numpy(), x.numpy())[1])
    return {"n_params": spec.n_params, "n_train": n, "vectorized_map_seconds": t_vec,
            "tape_jacobian_seconds": t_tape, "python_loop_seconds": t_loop,
            "speedup_vs_tape_jacobian": t_tape / t_vec, "speedup_vs_python_loop": t_loop / t_vec,
            "max_abs_diff_tape": float(np.max(np.abs(j_vec - j_tape))),
            "max_abs_diff_loop": float(np.max(np.abs(j_vec - j_loop))),
            # the NumPy backpropagation that curvature, predictions and the gate use (no TensorFlow start-up)
            "numpy_backprop_seconds": t_np, "numpy_speedup_vs_vectorized_map": t_vec / t_np,
            "max_abs_diff_numpy": float(np.max(np.abs(j_vec - j_np)))}


def precision(size: str, n: int, n_forget: int) -> dict:
    """GGN and a Newton downdate step in float32 vs float64 (same network, same θ)."""
    import scipy.linalg
    from bayesunlearn.model.tf import tf

    from bayesunlearn.model.autodiff import forward, jacobians

    model = model_for(size)
    x, y, mask = cell_data(n, n_forget, 0)
    theta = model.spec.init(0)

    def ggn_and_gradient(dtype):
        @tf.function
        def run(t, xs, ys):
            f, jac = forward(model.spec, t, xs), jacobians(model.spec, t, xs)
            return tf.matmul(jac, jac, transpose_a=True) * 100.0, tf.linalg.matvec(jac, f - ys, adjoint_a=True) * 100.0
        args = [tf.constant(a, dtype) for a in (theta, x, y)]
        forget_args = [tf.constant(a, dtype) for a in (theta, x[mask], y[mask])]
        seconds, (h, _) = best_of(lambda: [v.numpy() for v in run(*args)], 2)
        _, g_f = (v.numpy() for v in run(*forget_args))
        return seconds, h, g_f

    out = {"n_params": model.spec.n_params, "n_train": n}
    steps = {}
    for dtype in (tf.float64, tf.float32):
        seconds, h, g_f = ggn_and_gradient(dtype)
        jac_f = jacobians(model.spec, tf.constant(theta, dtype), tf.constant(x[mask], dtype)).numpy()
        lam = h - 100.0 * jac_f.T @ jac_f + np.eye(len(h), dtype=h.dtype)
        chol_seconds, factor = best_of(lambda lam=lam: scipy.linalg.cholesky(lam, lower=True), 2)
        steps[dtype.name] = scipy.linalg.cho_solve((factor, True), g_f).astype(np.float64)
        out[f"{dtype.name}_ggn_seconds"] = seconds
        out[f"{dtype.name}_cholesky_seconds"] = chol_seconds
        out[f"{dtype.name}_ggn"] = h
    h64, h32 = out.pop("float64_ggn"), out.pop("float32_ggn").astype(np.float64)
    out["ggn_relative_error_float32"] = float(np.linalg.norm(h32 - h64) / np.linalg.norm(h64))
    out["newton_step_relative_error_float32"] = float(np.linalg.norm(steps["float32"] - steps["float64"])
                                                      / np.linalg.norm(steps["float64"]))
    out["precision_condition_number"] = float(np.linalg.cond(h64 + np.eye(len(h64))))
    return out


def ggn_accumulation(size: str, n: int) -> dict:
    """One-shot JᵀJ over all rows vs in-place SYRK over row batches (the large-problem path)."""
    from bayesunlearn.model import curvature

    model = model_for(size)
    x, y, _ = cell_data(n, 0, 0)
    theta = model.spec.init(0)
    budget = curvature.JACOBIAN_BUDGET
    curvature.data_curvature(model, theta, x[:10], y[:10])
    try:
        curvature.JACOBIAN_BUDGET = n * model.spec.n_params  # force the one-shot path
        curvature.data_curvature(model, theta, x, y)  # trace
        one_seconds, one_mb, (h_one, _) = with_peak(lambda: curvature.data_curvature(model, theta, x, y))
        curvature.JACOBIAN_BUDGET = budget
        del h_one
        batched_seconds, batched_mb, (h_batched, _) = with_peak(lambda: curvature.data_curvature(model, theta, x, y))
        curvature.JACOBIAN_BUDGET = n * model.spec.n_params
        h_one, _ = curvature.data_curvature(model, theta, x, y)
    finally:
        curvature.JACOBIAN_BUDGET = budget
    return {"n_params": model.spec.n_params, "n_train": n, "jacobian_mb": n * model.spec.n_params * 8 / 2**20,
            "one_shot_seconds": one_seconds, "one_shot_peak_increment_mb": one_mb,
            "batched_syrk_seconds": batched_seconds, "batched_peak_increment_mb": batched_mb,
            "batches": len(curvature.row_batches(n, model.spec.n_params)),
            "max_relative_diff": float(np.max(np.abs(h_one - h_batched)) / np.max(np.abs(h_one)))}


def downdate(size: str, n: int, n_forget: int) -> dict:
    """Forget n_forget records from a full-GGN Laplace posterior three ways."""
    from bayesunlearn.numerics import dense
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.divide import forget

    model = model_for(size)
    x, y, mask = cell_data(n, n_forget, 0)
    posterior = fit_laplace(model, model.spec.init(0), x, y, "full_ggn")
    x_f, y_f = x[mask], y[mask]
    forget(posterior.with_updates(), x_f[:2], y_f[:2])  # trace the Jacobians; copies are cheap next to P²
    # the alternative keeps Λ (a large GGN posterior is held as Σ only): formed here, untimed
    precision = posterior.dense_precision()

    def refactorise():
        from bayesunlearn.model.curvature import data_curvature

        h_f, g_f = data_curvature(model, posterior.linearisation_point, x_f, y_f)
        h_f -= precision
        h_f *= -1.0  # Λ − H_f in h_f's buffer
        covariance = dense.inverse_spd(h_f)
        return covariance, posterior.mean + covariance @ g_f

    t_copy, mb_copy, (woodbury, _) = with_peak(lambda: forget(posterior, x_f, y_f))
    cov_w, mean_w = woodbury.covariance, woodbury.mean
    del woodbury
    t_ref, mb_ref, (cov_r, mean_r) = with_peak(refactorise)
    diff = float(np.max(np.abs(cov_w - cov_r)) / np.max(np.abs(cov_r)))
    mean_diff = float(np.max(np.abs(mean_w - mean_r)))
    del cov_w, cov_r
    t_in, mb_in, _ = with_peak(lambda: forget(posterior, x_f, y_f, in_place=True))
    return {"n_params": model.spec.n_params, "n_forget": n_forget,
            "woodbury_seconds": t_copy, "woodbury_peak_increment_mb": mb_copy,
            "woodbury_in_place_seconds": t_in, "woodbury_in_place_peak_increment_mb": mb_in,
            "refactorise_seconds": t_ref, "refactorise_peak_increment_mb": mb_ref,
            "speedup_in_place_vs_refactorise": t_ref / t_in,
            "covariance_max_relative_diff": diff, "mean_max_abs_diff": mean_diff}


def run_compute(quick: bool = False) -> dict:
    from bayesunlearn.model.tf import tf
    from bayesunlearn.io.progress import progress

    tf.config.experimental.enable_op_determinism()
    parts = {
        "xla": lambda: [xla("150", 200, 2000), xla("2.5k", 5000, 200)],
        "jacobians": lambda: [jacobian_methods("150", 100), jacobian_methods("2.5k", 100)],
        "precision": lambda: precision("2.5k", 5000, 50),
        "ggn_accumulation": lambda: ggn_accumulation("2.5k", 20000),
        "downdate": lambda: [downdate("2.5k", 2000, 50)] + ([] if quick else [downdate("10k", 2000, 50)]),
    }
    out = {name: fn() for name, fn in progress(parts.items(), desc="compute choices", unit="part", total=len(parts))}
    return {**out, "load_average": os.getloadavg()[0]}  # the machine is shared: context for the timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the 10k-parameter downdate")
    args = parser.parse_args(argv)
    print(json.dumps(run_compute(args.quick), indent=2))


if __name__ == "__main__":
    main()
