"""The prior's part in the gate's misses: the production method on one table's study events at other priors.

The production method's harmful fast-path events (key "gate_missed") sat on
`default` when this was written. This reruns that table's events of the real-data study, for the
production method alone, with the original and the retrains refitted at each
prior precision α of ALPHAS (α itself, never re-tuned by the evidence), and
reports per α: the Laplace log evidence of the original (which α the data
prefer), its test accuracy and NLL, and the gate's confusion against the
audit's truth on the events. The row of the shipped α is checked against the
study (`matches_study`). Key "gate_prior" of `make bench`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesunlearn.experiments import events
from bayesunlearn.experiments.confusion import SMALL, confusion
from bayesunlearn.io.progress import progress
from bayesunlearn.io.settings import Settings
from bayesunlearn.posteriors.fit import FitSettings
from bayesunlearn.posteriors.laplace import log_marginal_likelihood
from bench import real

DATASET = "default"
ALPHAS = (0.5, 1.0, 2.0, 3.0)  # with the shipped model.prior_precision, examined whatever it is


def examine(params: Settings) -> dict:
    method = params.gate.method
    chosen = params.method(method)
    fixed = FitSettings(params.laplace.model_copy(update={"optimize_hyperparameters": False}), params.vi)
    setup = events.Setup({method: chosen}, params.train, fixed, params.train.seed, params.retrain.seeds,
                         params.gate, params.audit, [])
    table = events.load_table(DATASET, params.prepare, params.real_study.max_train_records)
    deletions = events.events(table, params.real_study)
    study = real.results()
    study = study[(study["dataset"] == DATASET) & (study["method"] == method)]
    rows = []
    for alpha in progress(sorted({*ALPHAS, params.model.prior_precision}), desc="gate_prior", unit="precision"):
        section = params.model.model_copy(update={"prior_precision": alpha})
        originals = events.fit_originals(table.model(section), table, setup)
        original = originals[chosen.posterior]
        frame = pd.DataFrame([row for event in deletions
                              for row in events.run_event(table, event, originals, setup).rows])
        fit = original.predictive_nll(table.x_test, table.y_test)
        row = {"prior_precision": alpha, "log_evidence": log_marginal_likelihood(original, table.x, table.y),
               "test_accuracy": float(frame["test_accuracy_original"].dropna().iloc[0]),
               "test_nll": float(np.mean(fit)), "events": len(frame), **confusion(frame).to_dict(),
               "median_gain": float(frame["gain"].median())}
        if alpha == params.model.prior_precision:
            key = ["mode", "fraction", "seed"]
            joined = frame.merge(study, on=key, suffixes=("", "_study"))
            row["matches_study"] = bool(len(joined) == len(study) == len(frame) and np.allclose(
                joined["pred_kl_unlearned_retrained"], joined["pred_kl_unlearned_retrained_study"], rtol=1e-9,
                atol=0.0) and (joined["gate"] == joined["gate_study"]).all())
        rows.append(row)
    return {"dataset": DATASET, "method": method, "alphas": rows}


def block(report: dict) -> str:
    """The docs table: one row per prior precision."""
    from bayesunlearn.experiments.report import markdown

    frame = pd.DataFrame(report["alphas"])
    frame["fallback"] = frame["fallback_helped"] + frame["fallback_harmed"]
    frame["small_random"] = [f"{r.small_random_fast_path}/{r.small_random_events}" for r in frame.itertuples()]
    columns = {"prior_precision": "prior precision α", "log_evidence": "log evidence (nats)",
               "test_accuracy": "test accuracy", "test_nll": "test NLL (nats)", "fast_path_harmed": "fast path, harmed",
               "fast_path_helped": "fast path, helped", "fallback": "fallback",
               "small_random": f"random ≤ {SMALL:.0%} on the fast path", "median_gain": "median gain"}
    table = markdown(frame[list(columns)].rename(columns=columns))
    shipped = frame.loc[frame["matches_study"].notna()].iloc[0]  # only the shipped α's row is checked against it
    meeting = frame[frame["meets_targets"] & (frame["prior_precision"] != shipped.prior_precision)]
    if meeting.empty:
        return table + "\n\nNo other prior precision tried meets both targets on this table."
    costs = [f"α = {r.prior_precision:g}: {abs(shipped.log_evidence - r.log_evidence):.2f} nats "
             f"{'below' if r.log_evidence < shipped.log_evidence else 'above'}" for r in meeting.itertuples()]
    return (table + "\n\nBoth targets hold on this table at another prior, its log evidence against the shipped "
            f"α = {shipped.prior_precision:g}'s: " + "; ".join(costs) + ".")
