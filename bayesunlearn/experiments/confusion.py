"""The gate judged by the audit: its decision on every study event against the truth of the retrains.

A harmful event (the audit calls the unlearned posterior poor, or the operator
failed) must take the fallback; the fast path is worth having only when most
small random deletions take it. Targets: no harmful event on the fast path, and
at least `MIN_SMALL_RANDOM_SHARE` of random deletions of at most `SMALL` of the
records on the fast path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

SMALL = 0.1
MIN_SMALL_RANDOM_SHARE = 0.8


@dataclass(frozen=True)
class Confusion:
    """Events by the gate's decision (fast path = pass) and the audit's truth."""

    fast_path_helped: int
    fast_path_harmed: int
    fallback_helped: int
    fallback_harmed: int
    small_random_events: int
    small_random_fast_path: int

    @property
    def small_random_share(self) -> float:
        return self.small_random_fast_path / self.small_random_events if self.small_random_events else float("nan")

    @property
    def meets_targets(self) -> bool:
        return self.fast_path_harmed == 0 and self.small_random_share >= MIN_SMALL_RANDOM_SHARE

    def to_dict(self) -> dict:
        return asdict(self) | {"small_random_share": self.small_random_share, "meets_targets": self.meets_targets}


def confusion(results: pd.DataFrame) -> Confusion:
    """Counts over the gated rows of `results` (fine-tuning baselines have no gate and are left out)."""
    rows = results[results["gate"].isin(["pass", "fallback"])]
    fast, harmed = rows["gate"] == "pass", rows["harmed"] == 1
    small = (rows["mode"] == "random") & (rows["fraction"] <= SMALL)
    return Confusion(int((fast & ~harmed).sum()), int((fast & harmed).sum()), int((~fast & ~harmed).sum()),
                     int((~fast & harmed).sum()), int(small.sum()), int((small & fast).sum()))


def gate_confusion(results: pd.DataFrame, production: str) -> dict:
    """The production method's table (what is served), every gated method pooled, and each method's."""
    per_method = {m: confusion(part).to_dict() for m, part in results.groupby("method", sort=True)
                  if part["gate"].isin(["pass", "fallback"]).any()}
    return {"production_method": production,
            "production": confusion(results[results["method"] == production]).to_dict(),
            "all_methods": confusion(results).to_dict(), "methods": per_method}
