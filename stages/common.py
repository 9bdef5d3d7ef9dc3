"""What every stage shares: paths, the checked settings, clean failures.

TensorFlow is set up for bit-identical results wherever it is imported (bayesunlearn/model/tf.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from bayesunlearn.io import settings as settings_module
from bayesunlearn.errors import ConfigError, Exit, UserError
from bayesunlearn.io.settings import Settings

PREPARED = Path("data/prepared")
SPLIT = Path("data/split")
MODELS = Path("models")
METRICS = Path("metrics")
PLOTS = Path("plots")


def settings() -> Settings:
    """params.yaml, parsed and checked once per process (every stage checks all of it before any work)."""
    return settings_module.load(settings_module.PARAMS)


def load_splits():
    """Retained, forgotten and test arrays (standardised) as an evaluation `Splits`."""
    from bayesunlearn.io import datasets, store

    return datasets.Splits(*datasets.arrays(store.load_table(SPLIT / "retained.csv")),
                  *datasets.arrays(store.load_table(SPLIT / "forgotten.csv")),
                  *datasets.arrays(store.load_table(PREPARED / "test.csv")))


def kind_argument(usage: str) -> str:
    """The posterior kind named on the command line; it must be one that params.yaml `posteriors` fits."""
    kind = one_argument(usage)
    if kind not in settings().posteriors:
        raise ConfigError(f"posterior kind {kind!r} is not in params.yaml `posteriors` {settings().posteriors}.")
    return kind


def one_argument(usage: str) -> str:
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(usage, file=sys.stderr)
        sys.exit(Exit.INPUT)
    return sys.argv[1]


def run(main: Callable[[], None]) -> None:
    """Run a stage; on bad input print one clear line and exit 2.

    params.yaml is checked as a whole first, so a typo anywhere stops every stage before it
    computes anything. Outputs are written atomically, so a failed stage leaves the previous
    ones intact.
    """
    try:
        settings()
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(Exit.INPUT)
