"""Why the gate missed: the real-data study's fast-path events that the audit finds harmful, examined.

For each such event of the production method (study/real/results.csv), the
event is rebuilt as the study builds it (the same table, original, retrains and
method, all bit-reproducible) and the served posterior is compared with two
more candidates, each refitted (Laplace) at its mean:
- local: the served mean run to a stationary point of the retained objective
  by the training's second-order polish alone (Levenberg–Marquardt on the GGN,
  no Adam steps, up to LOCAL_ITERATIONS iterations), timed beside a retrain from
  scratch of the same event (compiled for its shape already by the first of
  them): what a refinement that stays near the served mean can reach, and at
  what cost;
- polished: the training optimiser's full run (Adam, then the polish) from the
  served mean, which may leave its basin.
Two causes are told apart by the local candidate:
- the step fell short: the local run reaches the retrains (its difference to
  them falls below `audit.min_evidence`), so a longer local refinement serves a
  good posterior, at the local run's cost;
- the retrains sit in another optimum: the local run stops at a stationary point
  a detectable distance from them, so only retraining reaches them, and no
  signal computed around the original's optimum (what the gate can afford)
  sees it.
Key "gate_missed" of `make bench`.
"""

from __future__ import annotations

import time

import numpy as np

from bayesunlearn.experiments import events
from bayesunlearn.experiments.evaluation import compare
from bayesunlearn.io.settings import Settings
from bayesunlearn.model.likelihood import build_model, objective
from bayesunlearn.model.training import fit_map
from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
from bayesunlearn.unlearning.methods import apply
from bench import real

LOCAL_ITERATIONS = 3000  # enough for the local run to settle on every missed event of the study


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
    return {"method": method, "min_evidence": params.audit.min_evidence, "local_iterations": LOCAL_ITERATIONS,
            "events": rows, "step_fell_short": short, "another_optimum": len(rows) - short}


def _examine_event(table, event, original, model, setup, kind: str, row) -> dict:
    splits = events.splits_of(table, event)
    x_r, y_r = splits.x_retained, splits.y_retained
    unlearned, _ = apply(setup.methods[setup.gate.method], original, splits.x_forgotten, splits.y_forgotten,
                         (x_r, y_r))
    maps, retrain_seconds = [], 0.0
    for k in range(setup.n_retrains):
        start = time.perf_counter()
        maps.append(fit_map(model, x_r, y_r, model.spec.init(setup.seed0 + k), setup.train)[0])
        retrain_seconds = time.perf_counter() - start  # the last one: traced for this shape by the first
    retrains = [fit_posterior(kind, model, theta, x_r, y_r, setup.fit) for theta in maps]
    start = time.perf_counter()
    local_mean, local_fit = fit_map(model, x_r, y_r, unlearned.mean, setup.train.model_copy(
        update={"adam_steps": 0, "polish": "lm", "polish_iterations": LOCAL_ITERATIONS}))
    local_seconds = time.perf_counter() - start
    polished_mean, _ = fit_map(model, x_r, y_r, unlearned.mean, setup.train)
    n_judged = len(splits.x_test) + len(splits.x_forgotten)
    optimum = min(objective(model, theta, x_r, y_r)[0] for theta in maps)
    served = compare(original, unlearned, retrains, splits, parameter_space=False)

    def evidence(mean: np.ndarray) -> float:
        candidate = fit_posterior(kind, model, mean, x_r, y_r, setup.fit)
        return float(compare(original, candidate, retrains, splits, parameter_space=False)
                     ["pred_kl_unlearned_retrained"] * n_judged)

    local_evidence = evidence(local_mean)
    return {"dataset": table.name, "mode": event.mode, "fraction": float(event.fraction), "seed": event.seed,
            "evidence_nats": float(served["pred_kl_unlearned_retrained"] * n_judged),
            "matches_study": bool(np.isclose(served["pred_kl_unlearned_retrained"], row.pred_kl_unlearned_retrained,
                                             rtol=1e-9, atol=0.0)),
            "objective_above_optimum_nats": float(objective(model, unlearned.mean, x_r, y_r)[0] - optimum),
            "local_evidence_nats": local_evidence,
            "local_objective_above_optimum_nats": float(local_fit["objective"] - optimum),
            "local_iterations": local_fit["polish_iterations"], "local_grad_norm": local_fit["grad_norm"],
            "local_seconds": local_seconds, "retrain_seconds": retrain_seconds,
            "polished_evidence_nats": evidence(polished_mean),
            "polished_objective_above_optimum_nats": float(objective(model, polished_mean, x_r, y_r)[0] - optimum),
            "cause": "step fell short" if local_evidence < setup.audit.min_evidence else "another optimum"}


def block(report: dict) -> str:
    """The docs table, one row per missed event, and the local run's cost where the step fell short."""
    import pandas as pd

    from bayesunlearn.experiments.report import markdown

    frame = pd.DataFrame(report["events"])
    frame["local_cost"] = frame["local_seconds"] / frame["retrain_seconds"]
    frame["event"] = [f"{r.mode} {r.fraction:.0%}, seed {r.seed}" if r.mode == "random" else f"segment, seed {r.seed}"
                      for r in frame.itertuples()]
    columns = {"dataset": "dataset", "event": "event", "evidence_nats": "difference to the retrain (nats)",
               "objective_above_optimum_nats": "retained objective above the retrains' (nats)",
               "local_evidence_nats": "after the local run (nats)", "local_iterations": "its iterations",
               "local_cost": "its time / a retrain's", "polished_evidence_nats": "after the full run (nats)",
               "cause": "cause"}
    table = markdown(frame[list(columns)].rename(columns=columns))
    short = frame[frame["cause"] == "step fell short"]
    if short.empty:
        return table
    return table + (f"\n\nWhere the step fell short, the local run took {short['local_iterations'].min():,}–"
                    f"{short['local_iterations'].max():,} iterations, {short['local_cost'].min():.1f}–"
                    f"{short['local_cost'].max():.1f} times a retrain's time.")
