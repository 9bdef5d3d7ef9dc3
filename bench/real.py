"""The real-data study's results (study/real/, `dvc repro study/dvc.yaml:real_study`) as bench keys and docs tables.

The study is a DVC stage, so its results are versioned and bit-reproducible;
`make bench` reads them rather than running it again (hours on 2 cores:
docs/methods.md, "On real tables"). Keys: "real": {DATASET: {"random": {...}, "segment": {...}}} per
method, and "gate_confusion" (study/real/confusion.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bayesunlearn.experiments.report import markdown
from bayesunlearn.io.datasets import PACKAGED

ROOT = Path("study/real")


def available(root: Path = ROOT) -> bool:
    return all((root / name).is_file() for name in ("results.csv", "timing.json", "confusion.json"))


def results(root: Path = ROOT) -> pd.DataFrame:
    """The study's rows; rows written before the membership test joined it say that it did not run."""
    from bayesunlearn.experiments.confusion import with_membership_columns

    return with_membership_columns(pd.read_csv(root / "results.csv", keep_default_na=False, na_values=[""]))


# columns of study/real/summary.csv (experiments/events.summarise)
FIGURES = ("events", "median_gain", "median_indistinguishability", "harmed", "membership_tested",
           "membership_objections", "immaterial", "fast_path", "median_rmse_change", "median_mia_auc_excess")
COUNTS = ("events", "harmed", "membership_tested", "membership_objections", "immaterial", "fast_path")
CLASSIFIER_FIT = {"median_accuracy_change": "median Δ test accuracy", "median_ece_change": "median Δ test ECE"}
# a classifier's test fit (a binary or a multiclass table), in place of median_rmse_change


def classifier_datasets(summary: pd.DataFrame) -> set[str]:
    """The tables fitted as classifiers: the packaged tables whose target has class labels, two (Bernoulli)
    or more (categorical)."""
    return {name for name in summary["dataset"].unique() if PACKAGED[name].classes is not None}


def figures_of(dataset: str, classifiers: set[str]) -> list[str]:
    if dataset not in classifiers:
        return list(FIGURES)
    return [f for f in FIGURES if f != "median_rmse_change"] + list(CLASSIFIER_FIT)


def bench_keys(root: Path = ROOT) -> dict:
    """{"real": {DATASET: {MODE: {METHOD: {...}}, "retrain_seconds": …}}, "gate_confusion": {...}}: the study's
    summary per method, its wall time, and for random deletions the median gain per fraction."""
    summary = pd.read_csv(root / "summary.csv", float_precision="round_trip")
    by_fraction = results(root).query("mode == 'random'").groupby(["dataset", "method", "fraction"])["gain"].median()
    timing = json.loads((root / "timing.json").read_text())
    classifiers = classifier_datasets(summary)
    real: dict = {}
    for row in summary.itertuples(index=False):
        figures = {k: getattr(row, k) for k in figures_of(row.dataset, classifiers)}
        figures = {k: int(v) if k in COUNTS else float(v) for k, v in figures.items()}
        figures["seconds"] = timing.get(row.dataset, {}).get(row.method)
        if row.mode == "random":
            figures["median_gain_by_fraction"] = {f"{f:g}": float(g)
                                                  for f, g in by_fraction[row.dataset][row.method].items()}
        real.setdefault(row.dataset, {}).setdefault(row.mode, {})[row.method] = figures
    for dataset in real:
        real[dataset]["retrain_seconds"] = timing.get(dataset, {}).get("retrain")
    return {"real": real, "gate_confusion": json.loads((root / "confusion.json").read_text())}


def study_block(root: Path = ROOT) -> str:
    """Per dataset, mode and method: median gain and indistinguishability, harmful events (and those the per-record
    membership test objects to), immaterial events, events let through."""
    summary = pd.read_csv(root / "summary.csv")
    for count in ("harmed", "immaterial"):
        summary[count] = summary[count].astype(int).astype(str) + "/" + summary["events"].astype(str)
    summary["membership_objections"] = (summary["membership_objections"].astype(int).astype(str) + "/"
                                        + summary["membership_tested"].astype(int).astype(str))  # of the tested
    summary["fast path"] = summary["fast_path"].astype(int).astype(str) + "/" + summary["events"].astype(str)
    summary.loc[summary["method"].str.startswith("finetune_"), "fast path"] = "no gate"
    columns = {"dataset": "dataset", "mode": "mode", "method": "method", "median_gain": "median gain",
               "median_indistinguishability": "median indist.", "harmed": "harmed",
               "membership_objections": "membership objections / tested", "immaterial": "immaterial",
               "fast path": "fast path",
               "median_rmse_change": "median Δ test RMSE", "median_mia_auc_excess": "median MIA AUC − retrain's"}
    ordered = summary.sort_values(["dataset", "mode", "method"])
    fitted_as_classifier = ordered["dataset"].isin(classifier_datasets(summary))
    classifier = {k: v for k, v in columns.items() if k != "median_rmse_change"} | CLASSIFIER_FIT
    regressions = ordered[~fitted_as_classifier]
    tables = [markdown(regressions[list(columns)].rename(columns=columns))] if len(regressions) else []
    if fitted_as_classifier.any():  # classifiers: the test fit is accuracy and calibration error, not RMSE
        tables.append(markdown(ordered[fitted_as_classifier][list(classifier)].rename(columns=classifier)))
    return "\n\n".join(tables)


def confusion_block(root: Path = ROOT) -> str:
    """The gate's decisions against the audit's truth, under the former 1-nat threshold, the audit's test, and the
    test joined by the per-record membership objection (what the study writes) side by side: the production
    method on each table and pooled, and every gated method pooled."""
    report = json.loads((root / "confusion.json").read_text())
    criteria = report["criteria"]
    former, test = criteria["former_threshold"], criteria["likelihood_ratio_test"]
    stated = f"{test['detectable_nats']:.3g} nats (a = {test['detection_size']:g}, b = {test['detection_power']:g})"
    labels = {"former_threshold": f"{former['detectable_nats']:g} nat (former)", "likelihood_ratio_test": stated,
              "likelihood_ratio_test_and_membership": f"{stated} + membership"}
    production = report["production_method"]
    groups = [(f"{production} on {d}", lambda c, d=d: c["tables"][d]) for d in test["tables"]]
    groups += [(f"{production} pooled", lambda c: c["pooled"]), ("every gated method", lambda c: c["all_methods"])]
    rows = []
    for who, pick in groups:
        for key, label in labels.items():
            table = pick(criteria[key])
            rows.append({"events of": who, "detectable from": label,
                         **{f"{path}, {truth}": table[f"{key_of}_{truth}"] for path, key_of in
                            (("fast path", "fast_path"), ("fallback", "fallback"))
                            for truth in ("helped", "harmed", "immaterial")},
                         "random ≤ 10 % on the fast path": f"{table['small_random_fast_path']}/"
                                                          f"{table['small_random_events']}",
                         "no harm on the fast path": "yes" if table["no_harm_on_fast_path"] else "no",
                         "≥ 80 % of them on it": "yes" if table["small_random_on_fast_path"] else "no"})
    return markdown(pd.DataFrame(rows))


def membership_block(root: Path = ROOT) -> str:
    """What the per-record membership test adds to the harm criterion: gated events it objects to, and those it
    alone makes harmful, for the production method per table and pooled and for every gated method pooled."""
    report = json.loads((root / "confusion.json").read_text())
    production, counts = report["production_method"], report["membership"]
    groups = [(f"{production} on {d}", c) for d, c in counts["tables"].items()]
    groups += [(f"{production} pooled", counts["pooled"]), ("every gated method", counts["all_methods"])]
    return markdown(pd.DataFrame([{"events of": who, "events": c["events"], "tested": c["tested"],
                                   "the original objected to (power)": c["with_power"], "objected to": c["objected"],
                                   "harmful by it alone": c["added"], "of them on the fast path": c["added_on_fast_path"]}
                                  for who, c in groups]))


def calibration_block(root: Path = ROOT, old_limit: float = 5.0) -> str:
    """Per dataset, the signals behind the gate's limits: the production method's residual ratios and retained
    NLL changes, and how the harmful events of every method show in the gate's signals (harmful by the predictive
    criterion: the gate's signals are predictive; the membership objection is counted in its own table)."""
    table = results(root)
    production = json.loads((root / "confusion.json").read_text())["production_method"]
    rows = []
    for dataset, part in table[table["gate"].isin(["pass", "fallback"])].groupby("dataset", sort=True):
        mine, harmed = part[part["method"] == production], part[part["harmed_predictive"] == 1]  # predictive
        other = harmed["gate_reasons"].fillna("").str.contains("repair|failed|membership AUC")
        rows.append({"dataset": dataset, f"{production} events": len(mine),
                     f"residual ratio > {old_limit:g}": int((mine["residual_ratio"] > old_limit).sum()),
                     f"{production} harmed": int(mine["harmed_predictive"].sum()),
                     "largest retained NLL change": float(mine["retained_nll_change"].max()),
                     "harmful events (every method)": len(harmed),
                     "of them caught by repair, failure or AUC": int(other.sum()),
                     "smallest retained NLL change of the others": float(harmed[~other]["retained_nll_change"].min())
                     if (~other).any() else float("nan")})
    return markdown(pd.DataFrame(rows))
