"""What every stage shares: paths, params.yaml sections, deterministic TF, clean failures."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from bayesunlearn.errors import ConfigError, UserError

PARAMS = Path("params.yaml")
PREPARED = Path("data/prepared")
SPLIT = Path("data/split")
MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")


def params(section: str) -> dict:
    try:
        return yaml.safe_load(PARAMS.read_text())[section]
    except KeyError:
        raise ConfigError(f"params.yaml has no {section!r} section; restore it from the repository.") from None


def deterministic_tensorflow() -> None:
    """Same inputs ⇒ bit-identical outputs, across processes (DESIGN.md §5)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN may reorder float sums
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()


def fit_settings():
    from bayesunlearn.methods import FitSettings

    return FitSettings(bool(params("laplace").get("optimize_hyperparameters", False)), params("vi"))


def method(name: str):
    """One configured method by name (checks the whole `methods` section; no TensorFlow)."""
    from bayesunlearn.options import parse_methods

    methods = parse_methods(params("methods"))
    if name not in methods:
        raise ConfigError(f"method {name!r} is not configured; params.yaml methods are {sorted(methods)}.")
    return methods[name]


def load_splits():
    """Retained, forgotten and test arrays (standardised) as an evaluation `Splits`."""
    from bayesunlearn import datasets, store
    from bayesunlearn.evaluation import Splits

    return Splits(*datasets.arrays(store.load_table(SPLIT / "retained.csv")),
                  *datasets.arrays(store.load_table(SPLIT / "forgotten.csv")),
                  *datasets.arrays(store.load_table(PREPARED / "test.csv")))


def one_argument(usage: str) -> str:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(usage, file=sys.stderr)
        sys.exit(2)
    return sys.argv[1]


def run(main: Callable[[], None]) -> None:
    """Run a stage; on bad input print one clear line and exit 2.

    Outputs are written atomically, so a failed stage leaves the previous ones intact.
    """
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
