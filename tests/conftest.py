"""Shared, session-scoped fixtures: TensorFlow is imported and the small network fitted once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN may reorder float sums
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Fitted:
    model: object
    x: np.ndarray
    y: np.ndarray
    theta: np.ndarray
    forget_mask: np.ndarray  # a random 10 % of the training records


@pytest.fixture(scope="session")
def tf():
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    return tf


@pytest.fixture(scope="session")
def fitted(tf) -> Fitted:
    """A 1-16-1 tanh network fitted to 80 points of the two-cluster data."""
    from bayesunlearn import datasets
    from bayesunlearn.model import RegressionModel
    from bayesunlearn.network import MLPSpec
    from bayesunlearn.training import TrainConfig, fit_map

    frame = datasets.two_clusters(100, seed=3, noise_std=0.1, clusters=[[-2.0, -0.5], [0.5, 2.0]])
    train, _, _ = datasets.prepare(frame, test_fraction=0.2, seed=3, origin="test")
    x, y = datasets.arrays(train)
    model = RegressionModel(MLPSpec(1, (16,)), prior_precision=1.0, noise_std=0.1)
    theta, _ = fit_map(model, x, y, model.spec.init(0), TrainConfig(adam_steps=5000, polish_iterations=300))
    mask = np.zeros(len(x), dtype=bool)
    mask[np.random.default_rng(0).permutation(len(x))[: len(x) // 10]] = True
    return Fitted(model, x, y, theta, mask)
