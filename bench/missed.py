"""Why the gate missed: the real-data study's fast-path events that the audit finds harmful, examined.

For each such event of the production method (study/real/results.csv), the
event is rebuilt as the study builds it (the same table, original, retrains and
method, all bit-reproducible) and the served posterior is compared with one
more candidate: the unlearned mean polished to convergence by the training
optimiser on the retained records, the best any method that starts from the
original's optimum can reach. Two causes are told apart:
- the step fell short: the polished mean reaches the retrains' optimum (its
  difference to them falls below `audit.min_evidence`), so a longer local
  refinement would have served a good posterior;
- the retrains sit in another optimum: even the polished mean stays a
  detectable distance away, so only retraining reaches them, and no signal
  computed around the original's optimum (what the gate can afford) sees it.
Key "gate_missed" of `make bench`.
"""

from __future__ import annotations

import numpy as np

from bayesunlearn.experiments import events
from bayesunlearn.experiments.evaluation import compare
from bayesunlearn.io.settings import Settings
from bayesunlearn.model.likelihood import build_model, objective
from bayesunlearn.model.training import fit_map
from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
from bayesunlearn.unlearning.methods import apply
from bench import real


def examine(params: Settings) -> dict:
    """Per missed event: the evidence (nats) of its difference to the retrain, before and after polishing, and
    how far above the retrains' optimum each sits in the retained objective (nats)."""
    results = real.results()
    method = params.gate.method
    missed = results[(results["method"] == method) & (results["gate"] == "pass") & (results["harmed"] == 1)]
    chosen = params.method(method)
    setup = events.Setup({method: chosen}, params.train, FitSettings.of(params), params.train.seed,
                         params.retrain.seeds, params.gate, params.audit, [])
    rows = []
    for dataset, part in missed.groupby("dataset", sort=True):
        table = events.load_table(dataset, params.prepare, params.real_study.max_train_records)
        model = build_model(params.model.model_copy(update={"likelihood": table.likelihood}), table.x.shape[1],
                            table.classes)
        original = events.fit_originals(model, table, setup)[chosen.posterior]
        by_key = {(e.mode, round(e.fraction, 12), e.seed): e for e in events.events(table, params.real_study)}
        for row in part.itertuples(index=False):
            event = by_key[(row.mode, round(row.fraction, 12), row.seed)]
            rows.append(_examine_event(table, event, original, model, setup, chosen.posterior, row))
    short = sum(r["cause"] == "step fell short" for r in rows)
    return {"method": method, "min_evidence": params.audit.min_evidence, "events": rows,
            "step_fell_short": short, "another_optimum": len(rows) - short}


def _examine_event(table, event, original, model, setup, kind: str, row) -> dict:
    splits = events.splits_of(table, event)
    x_r, y_r = splits.x_retained, splits.y_retained
    unlearned, _ = apply(setup.methods[setup.gate.method], original, splits.x_forgotten, splits.y_forgotten,
                         (x_r, y_r))
    maps = [fit_map(model, x_r, y_r, model.spec.init(setup.seed0 + k), setup.train)[0]
            for k in range(setup.n_retrains)]
    retrains = [fit_posterior(kind, model, theta, x_r, y_r, setup.fit) for theta in maps]
    polished_mean, _ = fit_map(model, x_r, y_r, unlearned.mean, setup.train)
    polished = fit_posterior(kind, model, polished_mean, x_r, y_r, setup.fit)
    n_judged = len(splits.x_test) + len(splits.x_forgotten)
    optimum = min(objective(model, theta, x_r, y_r)[0] for theta in maps)
    served = compare(original, unlearned, retrains, splits, parameter_space=False)
    refined = compare(original, polished, retrains, splits, parameter_space=False)
    evidence = {name: float(c["pred_kl_unlearned_retrained"] * n_judged) for name, c in
                (("served", served), ("polished", refined))}
    return {"dataset": table.name, "mode": event.mode, "fraction": float(event.fraction), "seed": event.seed,
            "evidence_nats": evidence["served"],
            "matches_study": bool(np.isclose(served["pred_kl_unlearned_retrained"], row.pred_kl_unlearned_retrained,
                                             rtol=1e-9, atol=0.0)),
            "objective_above_optimum_nats": float(objective(model, unlearned.mean, x_r, y_r)[0] - optimum),
            "polished_evidence_nats": evidence["polished"],
            "polished_objective_above_optimum_nats": float(objective(model, polished_mean, x_r, y_r)[0] - optimum),
            "cause": "step fell short" if evidence["polished"] < setup.audit.min_evidence else "another optimum"}


def block(report: dict) -> str:
    """The docs table: one row per missed event."""
    import pandas as pd

    from bayesunlearn.experiments.report import markdown

    frame = pd.DataFrame(report["events"])
    frame["event"] = [f"{r.mode} {r.fraction:.0%}, seed {r.seed}" if r.mode == "random" else f"segment, seed {r.seed}"
                      for r in frame.itertuples()]
    columns = {"dataset": "dataset", "event": "event", "evidence_nats": "difference to the retrain (nats)",
               "objective_above_optimum_nats": "retained objective above the retrains' (nats)",
               "polished_evidence_nats": "after polishing (nats)", "cause": "cause"}
    return markdown(frame[list(columns)].rename(columns=columns))
