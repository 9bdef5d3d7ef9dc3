"""The sweep's plan: the study grid × network sizes, checked params, and a key for resumable cell files.

No TensorFlow and no Prefect: the flow plans in a light process and ships
only these small values to the workers (never data records).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .grid import MODES, Cell, study_grid
from .options import parse_methods


@dataclass(frozen=True)
class SweepCell:
    hidden: tuple[int, ...]
    cell: Cell

    @property
    def name(self) -> str:
        """File-name-safe and unique within a sweep, e.g. `h8/random-0.1-s0`."""
        return f"h{hidden_label(self.hidden)}/{self.cell.mode}-{self.cell.fraction!r}-s{self.cell.seed}"


@dataclass(frozen=True)
class SweepPlan:
    methods: tuple[str, ...]
    modes: tuple[str, ...]
    fractions: tuple[float, ...]
    seeds: tuple[int, ...]
    hidden: tuple[tuple[int, ...], ...]
    address: str | None
    n_workers: int
    retries: int

    def cells(self) -> list[SweepCell]:
        """Network size outermost; within a size, the study's own order."""
        return [SweepCell(h, c) for h in self.hidden for c in study_grid(self.modes, self.fractions, self.seeds)]


def hidden_label(hidden: Iterable[int]) -> str:
    return "x".join(str(h) for h in hidden)


def parse_sweep(section: dict, methods_section: dict) -> SweepPlan:
    """Check params.yaml `sweep` against the configured `methods`; every message names the fix."""
    configured = parse_methods(methods_section)
    names = tuple(section.get("methods") or configured)  # empty = every configured method, as in `study`
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise ConfigError(f"sweep.methods names {unknown}, which params.yaml `methods` does not configure; "
                          f"use some of {sorted(configured)}.")
    lists = {key: list(section.get(key) or []) for key in ("modes", "fractions", "seeds", "hidden")}
    empty = [key for key, value in lists.items() if not value]
    if empty:
        raise ConfigError(f"sweep.{empty[0]} is empty, so the grid has no cells; list at least one value "
                          f"(e.g. dvc exp run -S 'sweep.{empty[0]}=[...]').")
    bad_modes = [m for m in lists["modes"] if m not in MODES]
    if bad_modes:
        raise ConfigError(f"sweep.modes {bad_modes}: deletion modes are {list(MODES)}.")
    try:
        fractions = tuple(float(f) for f in lists["fractions"])
        seeds = tuple(int(s) for s in lists["seeds"])
        hidden = tuple(tuple(int(w) for w in h) for h in lists["hidden"])
        n_workers, retries = int(section.get("n_workers", 2)), int(section.get("retries", 2))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"params.yaml sweep section is mistyped ({err}); fractions are numbers, seeds "
                          f"integers, hidden a list of lists of layer widths (e.g. [[8], [16, 16]]).") from None
    if not all(0 < f < 1 for f in fractions):
        raise ConfigError(f"sweep.fractions {list(fractions)} must lie strictly between 0 and 1.")
    if not all(h and min(h) >= 1 for h in hidden):
        raise ConfigError(f"sweep.hidden {[list(h) for h in hidden]}: each entry lists positive layer widths.")
    if n_workers < 0 or retries < 0:
        raise ConfigError(f"sweep.n_workers={n_workers} and sweep.retries={retries} must be >= 0 "
                          f"(n_workers 0 = no cluster, the cells run in the flow's process).")
    address = section.get("address") or None
    return SweepPlan(names, tuple(lists["modes"]), fractions, seeds, hidden, address, n_workers, retries)


def context_key(config: dict, files: Iterable[Path]) -> str:
    """A digest of everything a cell's numbers depend on besides the cell itself.

    Cell files live under this key, so a rerun resumes only cells computed from
    the same params, data and core code; anything else starts afresh.
    """
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for path in sorted(files):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]
