"""Data sets with stable record ids, a fixed test split, categorical encoding and standardisation.

A prepared data set is a pair of DataFrames (train, test) with columns
`record_id`, the feature columns and `y`, plus the encoding and statistics used
to standardise them (a real target is standardised too; a binary one keeps its
0/1 labels, a categorical one its class indices 0 … K−1). Record ids are
assigned once, here, and every later step (deletion requests, splits, the audit
ledger) speaks of the same ids. The packaged tables are listed in tables.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd

from bayesunlearn.errors import DataError
from bayesunlearn.io import requests, store, tables
from bayesunlearn.io.sections import Prepare, TargetKind
from bayesunlearn.io.tables import PACKAGED

TARGET = "y"
ID = "record_id"
SUBSET = "subset"  # optional column "train" | "test": a split fixed in the data (kept by `deletions purge`)
MAX_CATEGORIES = 64  # more distinct values than this is free text or an identifier, not a category
TARGET_KINDS = get_args(TargetKind)  # a real target is standardised; a binary one holds 0.0 and 1.0, a
# categorical one the class indices 0.0 … K−1


@dataclass(frozen=True)
class Scaling:
    """How raw columns become model inputs: the categories of each text column (one 0/1 input each, named
    `column=value`) and the mean and standard deviation of every input, all computed on the training split.
    `target` is "real" (standardised like the inputs), "binary" or "categorical" (labels kept: mean 0, standard
    deviation 1); `classes` are a categorical target's labels in order."""

    features: list[str]
    feature_mean: list[float]
    feature_std: list[float]
    target_mean: float
    target_std: float
    categories: dict[str, list[str]] = field(default_factory=dict)
    target: str = "real"
    classes: list[str] | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGET_KINDS:
            raise DataError(f"scaling: target {self.target!r} must be one of {list(TARGET_KINDS)}.")
        if (self.target == "categorical") != (self.classes is not None):
            raise DataError(f"scaling: a {self.target} target {'needs' if self.target == 'categorical' else 'has no'}"
                            " class labels.")

    def to_dict(self) -> dict:
        """`target` only when it is not "real", `classes` only when categorical: the scaling of a real or binary
        target is written as before those existed."""
        d = asdict(self)
        if self.target == "real":
            del d["target"]
        if self.classes is None:
            del d["classes"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Scaling:
        return cls(**d)


def two_clusters(n_records: int, seed: int, noise_std: float,
                 clusters: list[list[float]]) -> pd.DataFrame:
    """1-D inputs drawn uniformly from separate intervals, targets from a smooth function.

    The gap between the clusters is where forgetting a whole cluster hurts: the
    retrained model has to extrapolate over it, which the Newton step cannot see.
    """
    if n_records < 4:
        raise DataError(f"n_records={n_records} is too small; use at least 4.")
    if noise_std <= 0:
        raise DataError(f"noise_std={noise_std} must be positive.")
    rng = np.random.default_rng(seed)
    which = np.arange(n_records) % len(clusters)
    lows = np.array([c[0] for c in clusters], dtype=float)[which]
    highs = np.array([c[1] for c in clusters], dtype=float)[which]
    x = np.sort(rng.uniform(lows, highs))
    y = np.sin(2.0 * x) + 0.3 * x + noise_std * rng.standard_normal(n_records)
    return pd.DataFrame({"x": x, TARGET: y})


def diabetes() -> pd.DataFrame:
    """scikit-learn's bundled diabetes regression data (442 records, 10 features)."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True)
    frame = bunch.data.copy()
    frame[TARGET] = bunch.target.to_numpy(dtype=float)
    return frame


def packaged(name: str) -> pd.DataFrame:
    """A packaged table (tables.PACKAGED) with its target renamed `y`, class labels as their indices. A table
    with incomplete rows keeps the complete ones with the ids of their published rows: given before the drop,
    so a record's id is its row in the package, whichever rows the drop removes."""
    spec = PACKAGED[name]
    frame, path = tables.read(name)
    frame = frame.rename(columns=spec.renamed).rename(columns={spec.target: TARGET})
    if spec.complete_rows:
        frame = with_record_ids(frame, name).dropna().reset_index(drop=True)
    if spec.classes is not None:
        frame[TARGET] = class_indices(frame[TARGET], spec.classes, f"{name}: {path}")
    return frame


def class_labels(prepare: Prepare) -> tuple[str, ...] | None:
    """The source's class labels in order (label i is the target value i; the model's output i of a
    categorical likelihood): a packaged table's, a csv's `classes`, ("0", "1") for a binary csv; None for a
    real target. The one definition: the prepare stage records them and every model is built from them."""
    if prepare.source in PACKAGED:
        return PACKAGED[prepare.source].classes
    if prepare.source != "csv" or prepare.csv.target_kind == "real":
        return None
    return ("0", "1") if prepare.csv.target_kind == "binary" else tuple(prepare.csv.classes)


def n_classes(prepare: Prepare) -> int:
    """How many classes the source's target has: build_model's `classes` (1 for a real target)."""
    labels = class_labels(prepare)
    return len(labels) if labels else 1


def class_names(indices: pd.Series, classes: tuple[str, ...]) -> pd.Series:
    """The labels of class indices (class_indices undone): a table written for people and csv sources."""
    return indices.map(dict(enumerate(classes)))


def class_indices(labels: pd.Series, classes: tuple[str, ...], origin: str) -> pd.Series:
    """Each label's position in `classes` as a float (0.0, 1.0, ...); a label outside `classes` is refused."""
    unknown = labels[~labels.isin(classes)]
    if len(unknown):
        raise DataError(f"{origin}: {len(unknown)} target values are not among the labels {list(classes)} "
                        f"(e.g. {sorted(map(str, unknown.unique()))[:5]}).")
    return labels.map({label: float(i) for i, label in enumerate(classes)}).astype(np.float64)


def from_csv(path: str | Path, target: str, id_column: str | None = None,
             categorical: Iterable[str] = (), classes: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a table; keep its own ids when it has an id column. `categorical` columns are read as text even
    when every value looks like a number (a purge must not turn grades 1, 2, 3 into a number). `classes`: the
    labels of a categorical target, read as written ("NA" is a label too) and replaced by their indices."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"CSV source {path} does not exist; set prepare.csv.path in params.yaml.")
    categorical = list(categorical)
    frame = pd.read_csv(path, dtype={c: str for c in categorical})
    missing = [c for c in categorical if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: categorical columns {missing} (prepare.csv.categorical) not found.")
    if target not in frame.columns:
        raise DataError(f"{path}: target column {target!r} not found; columns are {list(frame.columns)}.")
    if target != TARGET and TARGET in frame.columns:
        raise DataError(f"{path}: an input column is named {TARGET!r}, the name the target {target!r} takes; "
                        "rename that column.")
    ids = None
    if id_column:
        if id_column not in frame.columns:
            raise DataError(f"{path}: id column {id_column!r} not found.")
        frame.pop(id_column)
        ids = pd.Series(store.read_ids(path, id_column))
        check_ids(ids, f"{path}: id column {id_column!r}")
    if classes is not None:
        labels = pd.Series(store.read_ids(path, target), index=frame.index)
        frame[target] = class_indices(labels, tuple(classes), f"{path}: target column {target!r}")
    frame = frame.rename(columns={target: TARGET})
    if ids is not None:
        frame.insert(0, ID, ids.to_numpy())
    return frame


def load_source(prepare: Prepare, root: Path = Path(".")) -> tuple[pd.DataFrame, str]:
    """The raw table named by the `prepare` settings, and where it came from (for messages)."""
    if prepare.source == "two_clusters":
        g = prepare.two_clusters
        clusters = [list(c) for c in g.clusters]
        return two_clusters(g.n_records, prepare.seed, g.noise_std, clusters), prepare.source
    if prepare.source == "diabetes":
        return with_record_ids(diabetes(), "diabetes"), prepare.source
    if prepare.source in PACKAGED:
        return with_record_ids(packaged(prepare.source), prepare.source), prepare.source
    c = prepare.csv
    return from_csv(root / c.path, c.target, c.id_column, c.categorical, c.classes), c.path


def check_ids(ids: pd.Series, origin: str) -> None:
    """Every id must be one a deletion request can name (the request schema's rules), and unique."""
    for value in ids:
        problem = requests.record_id_problem(value)
        if problem:
            raise DataError(f"{origin}: {problem}; such a record could never be named in a deletion request.")
    if ids.duplicated().any():
        raise DataError(f"{origin}: has duplicate values {sorted(set(ids[ids.duplicated()]))[:5]}.")


def with_record_ids(frame: pd.DataFrame, prefix: str = "rec") -> pd.DataFrame:
    """Give every row a stable id (its position in the source) unless it has one. A packaged table's ids
    start with its name, so its ids never name the default data's records (a purge searches for ids)."""
    if ID in frame.columns:
        return frame
    frame = frame.copy()
    frame.insert(0, ID, [f"{prefix}-{i:06d}" for i in range(len(frame))])
    return frame


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    """The input columns that hold text (or anything but numbers): encoded one 0/1 input per category."""
    return [c for c in frame.columns if c not in (ID, SUBSET, TARGET) and not pd.api.types.is_numeric_dtype(frame[c])]


def check_values(frame: pd.DataFrame, origin: str) -> None:
    """Some rows, a numeric target, finite numbers, and a value in every cell of a categorical column."""
    if frame.empty:
        raise DataError(f"{origin}: the table has no rows.")
    if TARGET in frame.columns and not pd.api.types.is_numeric_dtype(frame[TARGET]):
        raise DataError(f"{origin}: the target column is not numeric; a real target takes numbers, a binary "
                        "one 0 and 1 (prepare.csv.target_kind: binary), and class labels need "
                        "prepare.csv.target_kind: categorical with prepare.csv.classes.")
    values = frame.drop(columns=[ID, SUBSET, *categorical_columns(frame)], errors="ignore")
    nan_rows = (values.isna().any(axis=1) | ~np.isfinite(values.to_numpy(dtype=float)).all(axis=1)
                | frame[categorical_columns(frame)].isna().any(axis=1))
    if nan_rows.any():
        first = frame.loc[nan_rows, ID].iloc[:5].tolist()
        raise DataError(f"{origin}: {int(nan_rows.sum())} rows hold NaN or infinite values "
                        f"(record ids {first}...); clean or drop them before preparing.")


def test_mask(frame: pd.DataFrame, test_fraction: float, seed: int) -> np.ndarray:
    """Which rows are test records: the data's own `subset` column, else a seeded random draw."""
    if SUBSET in frame.columns:
        bad = sorted(set(frame[SUBSET].astype(str)) - {"train", "test"})
        if bad:
            raise DataError(f"column {SUBSET!r} holds {bad}; its values must be 'train' or 'test'.")
        return (frame[SUBSET] == "test").to_numpy()
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction={test_fraction} must lie strictly between 0 and 1.")
    rng = np.random.default_rng(seed + 1)
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[rng.permutation(len(frame))[: max(1, round(test_fraction * len(frame)))]] = True
    return is_test


def split_train_test(frame: pd.DataFrame, test_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    is_test = test_mask(frame, test_fraction, seed)
    frame = frame.drop(columns=[SUBSET], errors="ignore")
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def raw_table(frame: pd.DataFrame, test_fraction: float, seed: int) -> pd.DataFrame:
    """The source with its ids and its train/test assignment as columns: deleting rows then moves no other row."""
    frame = with_record_ids(frame)
    return frame.assign(**{SUBSET: np.where(test_mask(frame, test_fraction, seed), "test", "train")})


def categories_of(train: pd.DataFrame, origin: str) -> dict[str, list[str]]:
    """Each categorical column's values in the training split, sorted (the inputs' fixed order)."""
    found = {c: sorted(train[c].astype(str).unique()) for c in categorical_columns(train)}
    for column, values in found.items():
        if len(values) > MAX_CATEGORIES:
            raise DataError(f"{origin}: column {column!r} has {len(values)} distinct non-numeric values (at most "
                            f"{MAX_CATEGORIES} are encoded as categories); drop it or make it numeric.")
    names = [f"{c}={v}" for c, values in found.items() for v in values]
    clashes = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(train.columns)))
    if clashes:
        raise DataError(f"{origin}: encoding the categorical columns would give two inputs named {clashes[:5]}; "
                        "rename the columns.")
    return found


def encode(frame: pd.DataFrame, categories: dict[str, list[str]]) -> pd.DataFrame:
    """Each categorical column replaced, in place, by one 0/1 column per category; a value the training
    split never had gets all zeros."""
    columns: dict[str, pd.Series] = {}
    for c in frame.columns:
        if c in categories:
            text = frame[c].astype(str)
            columns.update({f"{c}={v}": (text == v).astype(np.float64) for v in categories[c]})
        else:
            columns[c] = frame[c]
    return pd.DataFrame(columns, index=frame.index)


def standardise(train: pd.DataFrame, test: pd.DataFrame, categories: dict[str, list[str]] | None = None,
                target: str = "real", classes: tuple[str, ...] | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame, Scaling]:
    """Inputs to mean 0 and standard deviation 1 on the training split; a real target too, class labels not."""
    features = [c for c in train.columns if c not in (ID, TARGET)]
    mean = train[features].mean()
    std = train[features].std(ddof=0).replace(0.0, 1.0)
    if target != "real":
        y_mean, y_std = 0.0, 1.0
    else:
        y_mean, y_std = float(train[TARGET].mean()), float(train[TARGET].std(ddof=0)) or 1.0
    scaling = Scaling(features, mean.tolist(), std.tolist(), y_mean, y_std, categories or {}, target,
                      list(classes) if target == "categorical" else None)

    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out[features] = (frame[features] - mean) / std
        if target == "real":
            out[TARGET] = (frame[TARGET] - y_mean) / y_std
        return out

    return apply(train), apply(test), scaling


def check_labels(y: pd.Series, target: str, classes: tuple[str, ...] | None, origin: str) -> None:
    """A binary target holds only 0 and 1, a categorical one only the indices of its `classes`."""
    if target == "binary":
        bad = sorted(set(y.astype(float)) - {0.0, 1.0})
        if bad:
            raise DataError(f"{origin}: a binary target holds only 0 and 1, not {bad[:5]}.")
    elif target == "categorical":
        if not classes or len(classes) < 2:
            raise DataError(f"{origin}: a categorical target needs its class labels, at least 2 (got {classes}).")
        bad = sorted(set(y.astype(float)) - set(map(float, range(len(classes)))))
        if bad:
            raise DataError(f"{origin}: a categorical target of {len(classes)} classes {list(classes)} holds only "
                            f"their indices 0 to {len(classes) - 1}, not {bad[:5]}.")


def prepare(frame: pd.DataFrame, test_fraction: float, seed: int, origin: str, target: str = "real",
            classes: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, Scaling]:
    """Ids, validation, a fixed test split, categorical encoding and standardisation, in that order.
    `target`: "real", "binary" (0/1 labels) or "categorical" (class indices): the `target_kind` of the source;
    labels are kept as they are. `classes`: the source's class_labels, recorded in a categorical target's
    scaling (ignored for the others, whose scaling is written as before)."""
    if target not in TARGET_KINDS:
        raise DataError(f"{origin}: target {target!r} must be one of {list(TARGET_KINDS)}.")
    frame = with_record_ids(frame)
    check_values(frame, origin)
    check_labels(frame[TARGET], target, classes, origin)
    train, test = split_train_test(frame, test_fraction, seed)
    categories = categories_of(train, origin)
    return standardise(encode(train, categories), encode(test, categories), categories, target, classes)


def subsample(part: pd.DataFrame, max_records: int | None, seed: int) -> pd.DataFrame:
    """At most `max_records` rows of a prepared part, drawn with `seed`, kept in their order (None: every row)."""
    if max_records is None or len(part) <= max_records:
        return part
    return part.sample(n=max_records, random_state=seed).sort_index().reset_index(drop=True)


def record_ids(path: str | Path) -> list[str]:
    """The record ids of a table, exactly as written (ids only: the values are never read).

    [] when the file does not exist or has no record_id column (e.g. a raw table with ids of its own name).
    """
    path = Path(path)
    if not path.exists():
        return []
    header = pd.read_csv(path, nrows=0).columns
    if ID not in header:
        return []
    return store.read_ids(path)


def prepared_ids(prepared: Path) -> requests.KnownIds:
    """The record ids of the prepared data (data/prepared), which requests are judged against.

    A missing table is an error that says how to restore it, never "no records" (which would judge every
    valid request `unknown-record`).
    """
    for name in ("train.csv", "test.csv"):
        if not (prepared / name).is_file():
            raise DataError(f"{prepared / name} is missing (an output of the DVC stage `prepare`): restore it with "
                            "`dvc checkout prepare` (or rebuild it with `dvc repro prepare`), then run again.")
    return requests.KnownIds(*(frozenset(record_ids(prepared / name)) for name in ("train.csv", "test.csv")))


@dataclass(frozen=True)
class Splits:
    """Inputs and targets of the three evaluation sets (standardised)."""

    x_retained: np.ndarray
    y_retained: np.ndarray
    x_forgotten: np.ndarray
    y_forgotten: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix (n, d) and target vector (n,) as float64."""
    features = [c for c in frame.columns if c not in (ID, TARGET)]
    return frame[features].to_numpy(dtype=np.float64), frame[TARGET].to_numpy(dtype=np.float64)
