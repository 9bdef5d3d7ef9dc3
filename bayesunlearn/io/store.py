"""Byte-reproducible storage: named float64 arrays plus JSON metadata (.npz), and tables (.csv).

`np.savez` stamps the current time into its zip entries, so two identical fits
would give different files and different DVC hashes; this writer fixes the
timestamps. Files still load with plain `np.load`. Tables keep float64 values
exact (17 significant digits) and record ids verbatim.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from bayesunlearn.io import atomic


def save_arrays(path: str | Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        entries = {"meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8), **arrays}
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, array in entries.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())

    atomic.write_with(path, write, suffix=".npz")


def load_arrays(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        return meta, {k: data[k] for k in data.files if k != "meta"}


def save_table(path: str | Path, frame: pd.DataFrame) -> None:
    """CSV with 17 significant digits, so float64 values survive the round trip exactly."""
    atomic.write_with(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.17g"))


def load_table(path: str | Path, id_column: str = "record_id") -> pd.DataFrame:
    """A CSV with its values exact and its ids verbatim (see read_ids)."""
    table = pd.read_csv(path, float_precision="round_trip", dtype={id_column: str})
    if id_column in table.columns:
        table[id_column] = read_ids(path, id_column)
    return table


def read_ids(path: str | Path, id_column: str = "record_id") -> list[str]:
    """The id column exactly as written: pandas would read "NA", "null" or an empty field as missing and
    "007" as 7, making such a record impossible to name in a request."""
    return pd.read_csv(path, usecols=[id_column], dtype=str, keep_default_na=False)[id_column].tolist()


def read_strings(path: str | Path) -> pd.DataFrame:
    """Every cell as the string on disk (no missing-value or number parsing)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)
