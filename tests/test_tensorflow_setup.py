"""The deterministic TensorFlow and BLAS set-up cannot be defeated by import order."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from conftest import REPO


def test_no_project_module_imports_tensorflow_but_through_the_set_up():
    offenders = []
    for path in sorted(REPO.glob("*/**/*.py")):
        if path.parts[len(REPO.parts)] in (".venv", "tests") or path.name == "tf.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("tensorflow", "tensorflow_probability") for n in names):
                offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"import TensorFlow through bayesunlearn.model.tf, not directly: {offenders}"


def run(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**environment, "PYTHONPATH": str(REPO), **env}, timeout=300)


def test_tensorflow_imported_first_with_onednn_on_is_refused_with_the_remedy():
    result = run("import tensorflow\nimport bayesunlearn.model.autodiff")
    assert result.returncode != 0 and "import bayesunlearn.model.tf first" in result.stderr


def test_the_set_up_switches_determinism_on_and_onednn_off_and_prints_nothing():
    result = run("from bayesunlearn.model.tf import tf\nimport os\nfrom tensorflow.python.framework import config\n"
                 "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], config.is_op_determinism_enabled())")
    assert result.returncode == 0 and result.stdout.split() == ["0", "True"]
    assert result.stderr == "", result.stderr  # no CUDA probes, no warnings


BLAS_KERNEL = "import threadpoolctl\nprint(sorted({i['architecture'] for i in threadpoolctl.threadpool_info()}))"
BLAS_THREADS = "print(sorted({i['num_threads'] for i in threadpoolctl.threadpool_info()}))"


def without_a_chosen_kernel(code: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            env={**environment, "PYTHONPATH": str(REPO)}, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_every_stage_and_flow_process_uses_one_blas_kernel_and_thread_and_its_workers_the_kernel():
    """OpenBLAS would pick an AVX-512 kernel on an AVX-512 host, and as many threads as the host has cores:
    either changes a product's rounding. NumPy's and SciPy's OpenBLAS both."""
    import bayesunlearn

    pinned = str(["Haswell"]) if bayesunlearn._avx2() else None  # without AVX2 the library's own choice stands
    for package in ("stages", "flows"):
        process, threads, worker = without_a_chosen_kernel(
            f"import {package}, subprocess, sys, scipy.linalg\n{BLAS_KERNEL}\n{BLAS_THREADS}\n"
            f"subprocess.run([sys.executable, '-c', 'import numpy\\n' + {BLAS_KERNEL!r}])")
        assert process == worker  # a Dask worker rounds as the stage that started it
        assert pinned is None or process == pinned, process
        assert threads == "[1]"  # blas_for raises it for P × P work only
    # NumPy loaded first: too late to pin, so nothing is set that a worker would take and the process not
    assert without_a_chosen_kernel("import numpy, bayesunlearn, os\nprint(os.environ.get('OPENBLAS_CORETYPE'))"
                                   ) == ["None"]


def test_the_numpy_network_equals_tensorflows(fitted):
    """Curvature, predictions and the gate use the NumPy network; training and VI TensorFlow's. One function."""
    import numpy as np

    from bayesunlearn.model import autodiff
    from bayesunlearn.model.likelihood import RegressionModel, nll, objective
    from bayesunlearn.model.network import MLPSpec, outputs, outputs_and_jacobians
    from bayesunlearn.model.tf import tf

    rng = np.random.default_rng(0)
    for activation in ("tanh", "relu", "softplus"):
        spec = MLPSpec(3, (7, 5), activation)
        theta, x = rng.standard_normal(spec.n_params), rng.standard_normal((11, 3))
        y = rng.standard_normal(11)
        f, jac = outputs_and_jacobians(spec, theta, x)
        f_tf = autodiff.forward(spec, autodiff.as_tensor(theta), autodiff.as_tensor(x)).numpy()
        jac_tf = autodiff.jacobians(spec, autodiff.as_tensor(theta), autodiff.as_tensor(x)).numpy()
        np.testing.assert_allclose(f, f_tf, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(jac, jac_tf, rtol=1e-12, atol=1e-13)
        np.testing.assert_array_equal(outputs(spec, theta, x), f)
        model = RegressionModel(spec, 1.7, 0.3)
        theta_t = tf.Variable(theta)
        with tf.GradientTape() as tape:
            value = -autodiff.log_joint(model, theta_t, autodiff.as_tensor(x), autodiff.as_tensor(y))
        value_np, grad_np = objective(model, theta, x, y)
        np.testing.assert_allclose(value_np, value.numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad_np, tape.gradient(value, theta_t).numpy(), rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(nll(model, theta, x, y)[1], jac.T @ (f - y) / 0.3**2, rtol=1e-11, atol=1e-12)
    f, jac = outputs_and_jacobians(fitted.model.spec, fitted.theta, fitted.x[:0])
    assert f.shape == (0,) and jac.shape == (0, fitted.model.spec.n_params)
