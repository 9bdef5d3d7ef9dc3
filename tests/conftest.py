"""Shared, session-scoped fixtures: TensorFlow is imported and the small network fitted once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bayesunlearn  # noqa: F401  (before NumPy: the BLAS kernel the stages use, also in-process)
import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN may reorder float sums
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# audit keys and ledger heads of test repositories: never in the user's home
os.environ["UNLEARN_AUDIT_HOME"] = tempfile.mkdtemp(prefix="unlearn-audit-home-")
os.environ.pop("UNLEARN_AUDIT_KEY", None)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def own_audit_home(request, tmp_path_factory, monkeypatch):
    """Unit tests get an audit home each (keys are per repository, and identical test repositories made in the
    same second share an id); module-scoped end-to-end fixtures keep the session's."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("UNLEARN_AUDIT_HOME", str(tmp_path_factory.mktemp("audit-home")))


@dataclass(frozen=True)
class Fitted:
    model: object
    x: np.ndarray
    y: np.ndarray
    theta: np.ndarray
    forget_mask: np.ndarray  # a random 10 % of the training records


@pytest.fixture(scope="session")
def tf():
    from bayesunlearn.model.tf import tf

    tf.config.experimental.enable_op_determinism()
    return tf


@pytest.fixture(scope="session")
def fitted(tf) -> Fitted:
    """A 1-16-1 tanh network fitted to 80 points of the two-cluster data."""
    from bayesunlearn.io import datasets
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec
    from bayesunlearn.io.sections import Train
    from bayesunlearn.model.training import fit_map

    frame = datasets.two_clusters(100, seed=3, noise_std=0.1, clusters=[[-2.0, -0.5], [0.5, 2.0]])
    train, _, _ = datasets.prepare(frame, test_fraction=0.2, seed=3, origin="test")
    x, y = datasets.arrays(train)
    model = RegressionModel(MLPSpec(1, (16,)), prior_precision=1.0, noise_std=0.1)
    theta, _ = fit_map(model, x, y, model.spec.init(0), Train(adam_steps=5000, polish_iterations=300))
    mask = np.zeros(len(x), dtype=bool)
    mask[np.random.default_rng(0).permutation(len(x))[: len(x) // 10]] = True
    return Fitted(model, x, y, theta, mask)


@pytest.fixture(scope="session")
def prefect(tmp_path_factory):
    """One temporary Prefect server for the whole session; results would land in a folder we can scan."""
    storage = tmp_path_factory.mktemp("prefect-storage")
    os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(storage)
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield storage


# --- a tiny copy of the repository, for end-to-end tests of DVC and Prefect -----------------

TINY = {
    ("prepare", "two_clusters", "n_records"): 60,
    ("train", "adam_steps"): 1000,
    ("train", "polish_iterations"): 200,  # newton: every tiny MAP converges (the gate refuses one that did not)
    ("model", "hidden"): [8],
    ("retrain", "seeds"): 2,
    ("vi", "steps"): 200,
    ("posteriors",): ["full_ggn", "vi_mean_field"],
    ("methods",): {
        "ggn_newton": {"posterior": "full_ggn", "operator": "divide"},
        "ggn_damped": {"posterior": "full_ggn", "operator": "divide", "mean_update": "damped"},
        # one refining step, not the shipped refinement to a mode: on the tiny data that lands on the retrain to
        # rounding, and the audit's tests need a served posterior the retrain can still be told apart from
        "ggn_refined": {"posterior": "full_ggn", "operator": "divide", "mean_update": "damped", "refine": 1},
        "vi_mf_eubo": {"posterior": "vi_mean_field", "operator": "eubo", "threshold": 1.0e-6, "steps": 50},
    },
    ("evaluate", "timing_repeats"): 1,
    ("audit", "shadow_retrains"): 3,
    ("evaluate", "plot_grid_points"): 20,
    ("study", "fractions"): [0.1],
    ("study", "seeds"): [0],
    ("real_study",): {"datasets": ["concrete"], "max_train_records": 120, "fractions": [0.1], "seeds": [0],
                      "segment_clusters": 4, "segment_max_share": 0.5, "methods": [], "finetune_steps": [5]},
    ("sweep", "hidden"): [[4]],  # one cell, in-process: the stage runs; Dask and the grid are test_sweep's job
    ("sweep", "modes"): ["random"],
    ("sweep", "seeds"): [0],
    ("sweep", "n_workers"): 0,
}


def sh(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def tiny_repo(root: Path, extra: dict | None = None, before_prepare=None, seeded: bool = True) -> Path:
    """The repository's tracked files with the TINY config, `prepare` run and one example request.

    `before_prepare(root)` runs in the new git repository before `dvc repro prepare` (e.g. to add raw data).
    `seeded`: the DVC cache starts as a copy of the session's seed repository's (`seed_cache`), so a stage
    whose dependencies and params match a stage already run there is restored from DVC's run-cache instead of
    rerun, as it would be in a user's workspace; tests that compare two independent computations pass False.
    """
    files = sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=REPO).stdout.split()
    for name in files:
        generated = (name.startswith(("metrics/", "study/", "plots/", "sweep/", "audit/"))
                     and not name.endswith("dvc.yaml") and name != "metrics/audit.json")  # the gate's input
        if (REPO / name).is_file() and not generated:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    params = yaml.safe_load((root / "params.yaml").read_text())
    for keys, value in {**TINY, **(extra or {})}.items():
        section = params
        for key in keys[:-1]:
            section = section[key]
        section[keys[-1]] = value
    params["study"]["methods"] = []
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "dvc.lock").unlink(missing_ok=True)
    sh("git", "init", "-q", cwd=root)
    if before_prepare is not None:
        before_prepare(root)
    if seeded:
        shutil.copytree(seed_cache(), root / ".dvc" / "cache", dirs_exist_ok=True)
    sh("dvc", "repro", "prepare", cwd=root)
    # the shipped example request names records of the default data: replace it with tiny-data ids
    for old in (root / "data/requests").glob("*.json"):
        old.unlink()
    write_request(root, "req-0001", train_ids(root)[:5])
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "tiny", cwd=root)
    return root


_SEED: list[Path] = []


def seed_cache() -> Path:
    """The DVC cache of one tiny repository in which the main job (`dvc repro headline`) ran, built once per
    session: the original's training and posterior fits, and the shipped request's unlearning, retrains and
    evaluation, are then run once per session rather than once per test module."""
    if not _SEED:
        root = tiny_repo(Path(tempfile.mkdtemp(prefix="tiny-seed-")), seeded=False)
        sh("dvc", "repro", "headline", cwd=root)
        _SEED.append(root / ".dvc" / "cache")
    return _SEED[0]


def train_ids(root: Path) -> list[str]:
    return [line.split(",")[0] for line in (root / "data/prepared/train.csv").read_text().splitlines()[1:]]


def request_payload(request_id: str, ids: list[str]) -> dict:
    return {"request_id": request_id, "record_ids": ids, "reason": "test", "received_at": "2026-11-27T10:00:00Z"}


def write_request(root: Path, request_id: str, ids: list[str], folder: str = "data/requests") -> Path:
    path = root / folder / f"{request_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(request_payload(request_id, ids)))
    return path
