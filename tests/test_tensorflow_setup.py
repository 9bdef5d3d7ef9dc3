"""The deterministic TensorFlow set-up cannot be defeated by import order."""

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
    result = run("import tensorflow\nimport bayesunlearn.model.network")
    assert result.returncode != 0 and "import bayesunlearn.model.tf first" in result.stderr


def test_the_set_up_switches_determinism_on_and_onednn_off_and_prints_nothing():
    result = run("from bayesunlearn.model.tf import tf\nimport os\nfrom tensorflow.python.framework import config\n"
                 "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], config.is_op_determinism_enabled())")
    assert result.returncode == 0 and result.stdout.split() == ["0", "True"]
    assert result.stderr == "", result.stderr  # no CUDA probes, no warnings
