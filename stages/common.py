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


def run(main: Callable[[], None]) -> None:
    """Run a stage; on bad input print one clear line and exit 2.

    Outputs are written atomically, so a failed stage leaves the previous ones intact.
    """
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
