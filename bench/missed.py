"""Why the gate missed: the real-data study's fast-path events that the audit finds harmful, examined.

For each such event of the production method (study/real/results.csv), the
event is rebuilt as the study builds it (the same table, original, retrains and
method, all bit-reproducible) and the served posterior is compared with two
more candidates, each refitted (Laplace) at its mean:
- local: the served mean moved by the training's second-order polish alone
  (Levenberg–Marquardt on the GGN, no Adam steps), in rounds of CHECK_EVERY
  iterations, until the audit finds nothing wrong with the candidate, the polish
  converges (‖∇L_r‖ below `train.grad_tolerance`) or LOCAL_ITERATIONS pass. Its
  iterations and its polish time (the audit's checks between rounds not
  counted) are set beside the median warm retrain from scratch of the same
  event: what a refinement that stays near the served mean reaches, and at
  what cost. The stop asks the audit, which needs the retrains, so the cost is
  a lower bound on that of a refinement that must stop without them;
- polished: the training optimiser's full run (Adam, then the polish) from the
  served mean, which may leave its basin.
The local candidate tells three causes apart:
- the step fell short: the local run reaches a posterior the audit accepts, so
  a longer local refinement serves a good one, at the local run's cost;
- another optimum: the local run converges to a posterior the audit still
  finds poor, so only retraining reaches the retrains, and no signal computed
  around the original's optimum (what the gate can afford) sees it;
- local run unfinished: neither within LOCAL_ITERATIONS.
Key "gate_missed" of `make bench`.
"""

from __future__ import annotations

import time

import numpy as np

from bayesunlearn.experiments import events
from bayesunlearn.experiments.evaluation import compare
from bayesunlearn.io.progress import progress
from bayesunlearn.io.settings import Settings
from bayesunlearn.model.likelihood import objective
from bayesunlearn.model.training import fit_map
from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
from bayesunlearn.unlearning.methods import apply
from bench import real

LOCAL_ITERATIONS = 3000
CHECK_EVERY = 100  # polish iterations between the audit's checks of the local run (each round restarts LM's damping)
CAUSES = ("step fell short", "another optimum", "local run unfinished")


def examine(params: Settings) -> dict:
    """Per missed event: the evidence (nats) of each candidate's difference to the retrains, how far above the
    retrains' optimum each sits in the retained objective (nats), and the local run's cost."""
    results = real.results()
    method = params.gate.method
    # harmful by the predictive criterion (a membership objection alone is not what a longer run could mend)
    missed = results[(results["method"] == method) & (results["gate"] == "pass") & (results["harmed_predictive"] == 1)]
    chosen = params.method(method)
    setup = events.Setup({method: chosen}, params.train, FitSettings.of(params), params.train.seed,
                         params.retrain.seeds, params.gate, params.audit, [])
    rows, bar = [], progress(total=len(missed), desc="gate_missed", unit="event")
    for dataset, part in missed.groupby("dataset", sort=True):
        table = events.load_table(dataset, params.prepare, params.real_study.max_train_records)
        model = table.model(params.model)
        original = events.fit_originals(model, table, setup)[chosen.posterior]
        by_key = {(e.mode, round(e.fraction, 12), e.seed): e for e in events.events(table, params.real_study)}
        for row in part.itertuples(index=False):
            event = by_key[(row.mode, round(row.fraction, 12), row.seed)]
            rows.append(_examine_event(table, event, original, model, setup, chosen.posterior, row))
            bar.update()
    bar.close()
    counts = {cause.replace(" ", "_"): sum(r["cause"] == cause for r in rows) for cause in CAUSES}
    return {"method": method, "min_evidence": params.audit.detectable_nats, "local_iterations": LOCAL_ITERATIONS,
            "check_every": CHECK_EVERY, "events": rows, **counts}


def _examine_event(table, event, original, model, setup, kind: str, row) -> dict:
    splits = events.splits_of(table, event)
    x_r, y_r = splits.x_retained, splits.y_retained
    unlearned, _ = apply(setup.methods[setup.gate.method], original, splits.x_forgotten, splits.y_forgotten,
                         (x_r, y_r))
    maps = [fit_map(model, x_r, y_r, model.spec.init(setup.seed0 + k), setup.train)[0]
            for k in range(setup.n_retrains)]
    retrain_seconds = float(np.median([_retrain_seconds(model, x_r, y_r, setup, k) for k in range(setup.n_retrains)]))
    retrains = [fit_posterior(kind, model, theta, x_r, y_r, setup.fit) for theta in maps]
    n_judged = len(splits.x_test) + len(splits.x_forgotten)
    optimum = min(objective(model, theta, x_r, y_r)[0] for theta in maps)

    def judged(mean: np.ndarray) -> tuple[float, list[str]]:
        """The candidate's evidence (nats) against the retrains, and the audit's problems with it."""
        candidate = fit_posterior(kind, model, mean, x_r, y_r, setup.fit)
        c = compare(original, candidate, retrains, splits, parameter_space=False)
        evidence = float(c["pred_kl_unlearned_retrained"] * n_judged)
        return evidence, setup.audit.problems(c["gain"], c["indistinguishability"], evidence)

    polish = setup.train.model_copy(update={"adam_steps": 0, "polish": "lm", "polish_iterations": CHECK_EVERY})
    local_mean, iterations, seconds, converged, problems = unlearned.mean, 0, 0.0, False, ["not yet judged"]
    while problems and not converged and iterations < LOCAL_ITERATIONS:
        start = time.perf_counter()
        local_mean, fit = fit_map(model, x_r, y_r, local_mean, polish)
        seconds += time.perf_counter() - start
        iterations, converged = iterations + fit["polish_iterations"], fit["polish_converged"]
        local_evidence, problems = judged(local_mean)
    cause = CAUSES[0] if not problems else CAUSES[1] if converged else CAUSES[2]
    polished_mean, _ = fit_map(model, x_r, y_r, unlearned.mean, setup.train)
    served = compare(original, unlearned, retrains, splits, parameter_space=False)
    return {"dataset": table.name, "mode": event.mode, "fraction": float(event.fraction), "seed": event.seed,
            "evidence_nats": float(served["pred_kl_unlearned_retrained"] * n_judged),
            "matches_study": bool(np.isclose(served["pred_kl_unlearned_retrained"], row.pred_kl_unlearned_retrained,
                                             rtol=1e-9, atol=0.0)),
            "objective_above_optimum_nats": float(objective(model, unlearned.mean, x_r, y_r)[0] - optimum),
            "local_evidence_nats": local_evidence,
            "local_objective_above_optimum_nats": float(objective(model, local_mean, x_r, y_r)[0] - optimum),
            "local_iterations": iterations, "local_converged": converged, "local_seconds": seconds,
            "retrain_seconds": retrain_seconds, "polished_evidence_nats": judged(polished_mean)[0],
            "polished_objective_above_optimum_nats": float(objective(model, polished_mean, x_r, y_r)[0] - optimum),
            "cause": cause}


def _retrain_seconds(model, x, y, setup, k: int) -> float:
    """Retrain k again, compiled and so warm: a retrain's cost varies with its seed (some polishes converge early,
    some use every iteration), hence the median over the retrains."""
    start = time.perf_counter()
    fit_map(model, x, y, model.spec.init(setup.seed0 + k), setup.train)
    return time.perf_counter() - start


def block(report: dict) -> str:
    """The docs table, one row per missed event, and the local run's cost where the step fell short."""
    import pandas as pd

    from bayesunlearn.experiments.report import markdown

    if not report["events"]:
        return "The audit finds no event on the fast path harmful."
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
    iterations, cost = short["local_iterations"], short["local_cost"]
    return table + (f"\n\nWhere the step fell short, the local run needed {_span(iterations, ',')} iterations (counted "
                    f"to within {report['check_every']}) to reach a posterior the audit accepts, {_span(cost, '.1f')} "
                    "times a retrain's time" + (" (longer than the retrain in every case)." if cost.min() > 1 else "."))


def _span(values, spec: str) -> str:
    """'a–b', or 'a' when every value is the same."""
    low, high = format(values.min(), spec), format(values.max(), spec)
    return low if low == high else f"{low}–{high}"
