"""The sweep's plan: the study grid × network sizes, and a key for resumable cell files.

No TensorFlow and no Prefect: the flow plans in a light process and ships
only these small values to the workers (never data records).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bayesunlearn.experiments.grid import Cell, study_grid
from bayesunlearn.io.settings import Settings


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


def plan(settings: Settings) -> SweepPlan:
    """The sweep grid of params.yaml `sweep` (already checked by the settings, methods included)."""
    sweep = settings.sweep
    return SweepPlan(tuple(sweep.methods or settings.methods), tuple(sweep.modes), tuple(sweep.fractions),
                     tuple(sweep.seeds), tuple(tuple(h) for h in sweep.hidden), sweep.address, sweep.n_workers,
                     sweep.retries)


def context_key(config: dict, root: Path, files: Iterable[Path]) -> str:
    """A digest of everything a cell's numbers depend on besides the cell itself.

    Cell files live under this key, so a rerun resumes only cells computed from
    the same params, data and core code; anything else starts afresh. Files are
    named by their path below `root`, so the key is the same in every clone.
    """
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]
