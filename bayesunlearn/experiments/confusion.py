"""The gate judged by the audit: its decision on every study event against the truth of the retrains.

A harmful event (the audit calls the unlearned posterior poor, or the operator
failed) must take the fallback; the fast path is worth having only when most
small random deletions take it. An immaterial event (neither the original nor
the unlearned posterior differs detectably from the retrains) is neither helped
nor harmed. Targets: no harmful event on the fast path, and at least
`MIN_SMALL_RANDOM_SHARE` of random deletions of at most `SMALL` of the records
on the fast path, on every real table.

The audit's criterion of a detectable difference is a likelihood-ratio test of
stated size and power (sections.Audit), joined by the per-record membership test
(an objection makes an event harmful); the table is also given under the former
fixed threshold of `FORMER_NATS`, without immaterial events or the membership
test, so the change shows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from bayesunlearn.io import detection
from bayesunlearn.io.sections import Audit

SMALL = 0.1
MIN_SMALL_RANDOM_SHARE = 0.8
FORMER_NATS = 1.0  # the audit's former fixed threshold (n × predictive KL), before the stated test


@dataclass(frozen=True)
class Confusion:
    """Events by the gate's decision (fast path = pass) and the audit's truth."""

    fast_path_helped: int
    fast_path_harmed: int
    fast_path_immaterial: int
    fallback_helped: int
    fallback_harmed: int
    fallback_immaterial: int
    small_random_events: int
    small_random_fast_path: int

    @property
    def small_random_share(self) -> float:
        return self.small_random_fast_path / self.small_random_events if self.small_random_events else float("nan")

    @property
    def no_harm_on_fast_path(self) -> bool:
        return self.fast_path_harmed == 0

    @property
    def small_random_on_fast_path(self) -> bool:
        return self.small_random_share >= MIN_SMALL_RANDOM_SHARE

    @property
    def meets_targets(self) -> bool:
        return self.no_harm_on_fast_path and self.small_random_on_fast_path

    def to_dict(self) -> dict:
        return asdict(self) | {"small_random_share": self.small_random_share, "meets_targets": self.meets_targets,
                               "no_harm_on_fast_path": self.no_harm_on_fast_path,
                               "small_random_on_fast_path": self.small_random_on_fast_path}


MEMBERSHIP_COLUMNS = ("told_apart_unlearned", "told_apart_retrained", "told_apart_original", "membership_objection",
                      "membership_power", "shadow_loss_spread", "harmed_predictive")


def with_membership_columns(results: pd.DataFrame) -> pd.DataFrame:
    """Results written before the per-record membership test joined the study, with its columns added as "did
    not run": no shares, no objection, and the predictive verdict as the only one."""
    if all(c in results for c in MEMBERSHIP_COLUMNS):
        return results
    not_run = {"told_apart_unlearned": float("nan"), "told_apart_retrained": float("nan"),
               "told_apart_original": float("nan"), "shadow_loss_spread": float("nan"), "membership_objection": 0,
               "membership_power": 0, "harmed_predictive": results["harmed"]}
    return results.assign(**{c: results.get(c, not_run[c]) for c in MEMBERSHIP_COLUMNS})


def confusion(results: pd.DataFrame) -> Confusion:
    """Counts over the gated rows of `results` (fine-tuning baselines have no gate and are left out)."""
    rows = results[results["gate"].isin(["pass", "fallback"])]
    fast, harmed, immaterial = rows["gate"] == "pass", rows["harmed"] == 1, rows["immaterial"] == 1
    helped = ~harmed & ~immaterial
    small = (rows["mode"] == "random") & (rows["fraction"] <= SMALL)
    return Confusion(fast_path_helped=int((fast & helped).sum()), fast_path_harmed=int((fast & harmed).sum()),
                     fast_path_immaterial=int((fast & immaterial).sum()),
                     fallback_helped=int((~fast & helped).sum()), fallback_harmed=int((~fast & harmed).sum()),
                     fallback_immaterial=int((~fast & immaterial).sum()),
                     small_random_events=int(small.sum()), small_random_fast_path=int((small & fast).sum()))


def rejudged(results: pd.DataFrame, audit: Audit, former: bool = False, membership: bool = True) -> pd.DataFrame:
    """`results` with `harmed` and `immaterial` judged again from its columns (the evidence is
    pred_kl_*_retrained × n_judged; the membership objection comes from the told_apart_* shares): by the audit's
    test, with the membership objection (Audit.verdict, what the study writes) or without it (`membership`
    False), or, `former`, by the fixed threshold of FORMER_NATS with no immaterial events and no membership
    test. A failed operator is harmful under every criterion."""
    harmed, immaterial = [], []
    for row in results.itertuples(index=False):
        evidence = row.pred_kl_unlearned_retrained * row.n_judged
        if row.failed:
            verdict = "poor"
        elif former:
            verdict = "poor" if audit.problems(row.gain, row.indistinguishability, evidence, FORMER_NATS) else "good"
        else:
            objection = objection_of(row, audit) if membership else None
            verdict, _ = audit.verdict(row.gain, row.indistinguishability, evidence,
                                       row.pred_kl_original_retrained * row.n_judged, membership=objection)
        harmed.append(int(verdict == "poor"))
        immaterial.append(int(verdict == "immaterial"))
    return results.assign(harmed=harmed, immaterial=immaterial)


def objection(n_forgotten: int, share: float, reference_share: float, audit: Audit) -> str | None:
    """The per-record membership test's objection to a posterior that tells `share` of the forgotten records
    apart, where the reference retrain tells `reference_share` apart (detection.membership_problem)."""
    return detection.membership_problem(n_forgotten, share, reference_share, audit.privacy_alpha, audit.detection_size)


def objection_of(row, audit: Audit) -> str | None:
    """The objection to a study row, from its shares (none where the test did not run)."""
    if pd.isna(row.told_apart_unlearned) or pd.isna(row.told_apart_retrained):
        return None
    return objection(int(row.n_forgotten), float(row.told_apart_unlearned), float(row.told_apart_retrained), audit)


def by_table(results: pd.DataFrame, production: str) -> dict:
    """The production method's table on each real table and pooled, and every gated method pooled."""
    mine = results[results["method"] == production]
    return {"tables": {d: confusion(part).to_dict() for d, part in mine.groupby("dataset", sort=True)},
            "pooled": confusion(mine).to_dict(), "all_methods": confusion(results).to_dict()}


def membership_counts(results: pd.DataFrame) -> dict:
    """Gated events the membership test ran on, those where it had power (it objects to the original, which saw
    the records), those it objects to, and those it alone makes harmful (the predictive criterion finds them
    good or immaterial), in all and on the fast path."""
    rows = results[results["gate"].isin(["pass", "fallback"])]
    tested = rows["told_apart_unlearned"].notna()
    objected = rows["membership_objection"] == 1
    added = objected & (rows["harmed_predictive"] == 0)
    fast = rows["gate"] == "pass"
    return {"events": len(rows), "tested": int(tested.sum()), "with_power": int((rows["membership_power"] == 1).sum()),
            "objected": int(objected.sum()), "added": int(added.sum()),
            "added_on_fast_path": int((added & fast).sum())}


def gate_confusion(results: pd.DataFrame, production: str, audit: Audit) -> dict:
    """The production method's table (what is served), every gated method pooled, and each method's, by the
    results' own verdicts; and under "criteria" the production method per table and pooled by the audit's test
    with and without the per-record membership test and by the former threshold side by side; under
    "membership" what the per-record test adds, for the production method per table and pooled and for every
    gated method pooled."""
    per_method = {m: confusion(part).to_dict() for m, part in results.groupby("method", sort=True)
                  if part["gate"].isin(["pass", "fallback"]).any()}
    stated = {"detection_size": audit.detection_size, "detection_power": audit.detection_power,
              "detectable_nats": audit.detectable_nats}
    criteria = {"likelihood_ratio_test_and_membership": {**stated, "privacy_alpha": audit.privacy_alpha,
                                                         **by_table(results, production)},
                "likelihood_ratio_test": {**stated, **by_table(rejudged(results, audit, membership=False), production)},
                "former_threshold": {"detectable_nats": FORMER_NATS,
                                     **by_table(rejudged(results, audit, former=True), production)}}
    mine = results[results["method"] == production]
    membership = {"tables": {d: membership_counts(part) for d, part in mine.groupby("dataset", sort=True)},
                  "pooled": membership_counts(mine), "all_methods": membership_counts(results)}
    return {"production_method": production,
            "production": confusion(results[results["method"] == production]).to_dict(),
            "all_methods": confusion(results).to_dict(), "methods": per_method, "criteria": criteria,
            "membership": membership}
