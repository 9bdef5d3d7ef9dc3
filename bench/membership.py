"""What the per-record membership test adds to the harm criterion, on the real-data study's events.

The study's own event code (experiments/events.run_event) on every event of the classification tables of
`real_study.datasets` (or the tables named), for the production method as configured and the study's
fine-tuning baselines, each judged by the audit (predictive criterion, then joined by the membership
objection) and by the gate. Per table: the production method's events, how many the test ran on, had power on
(it objects to the original), objected to, and made harmful by itself (on the fast path too); the shadows'
median loss spread; the gate's table under the stated test with the objection; and the measured wall time of
one retrain (the study's four retrains per event dominate its cost).

The regression tables are left out here: their retrains run the Newton polish's full budget (minutes each,
`python -m bench.membership concrete` measures it), which puts a full study rerun at hours; the retrain time
of a table run here is measured, and the study's total is extrapolated from it, never measured.
`python -m bench.membership [TABLE ...]` prints the JSON; `--write` also stores it as "membership_events" in
docs/bench.json. `--cost` instead times one retrain per table of the study and extrapolates a rerun's retrains
(key "study_cost").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

KEY = "membership_events"
COST_KEY = "study_cost"


def measure(tables: list[str] | None = None, params_path: str = "params.yaml") -> dict:
    import pandas as pd

    from bayesunlearn.experiments import events
    from bayesunlearn.experiments.confusion import confusion, membership_counts
    from bayesunlearn.io import settings as settings_module
    from bayesunlearn.io.progress import progress
    from bayesunlearn.posteriors.fit import FitSettings
    from bench.classifiers import classification_tables

    params = settings_module.load(params_path)
    study, method = params.real_study, params.gate.method
    setup = events.Setup({method: params.method(method)}, params.train, FitSettings.of(params), params.train.seed,
                         params.retrain.seeds, params.gate, params.audit, study.finetune_steps)
    out: dict = {"method": method, "config": params.method(method).model_dump(exclude_none=True),
                 "privacy_alpha": params.audit.privacy_alpha, "detection_size": params.audit.detection_size,
                 "shadows": params.retrain.seeds, "tables": {}}
    for table in classification_tables(params, tables):
        name, model = table.name, table.model(params.model)
        started = time.perf_counter()
        originals = events.fit_originals(model, table, setup)
        retrain_seconds = time.perf_counter() - started  # the original's MAP and posterior: a retrain's cost
        deletions = events.events(table, study)
        started = time.perf_counter()
        rows = [row for event in progress(deletions, desc=f"membership: {name}", unit="event")
                for row in events.run_event(table, event, originals, setup).rows]
        frame = pd.DataFrame(rows)
        mine = frame[frame["method"] == method]
        out["tables"][name] = {
            "n_train": len(table.x), "n_params": model.spec.n_params, "events": len(deletions),
            "retrain_seconds": retrain_seconds, "seconds": time.perf_counter() - started,
            "membership": membership_counts(mine), "confusion": confusion(mine).to_dict(),
            "median_gain": float(mine["gain"].median()),
            "median_shadow_loss_spread": float(mine["shadow_loss_spread"].median()),
            "rows": json.loads(frame.to_json(orient="records"))}
    return out


def study_cost(tables: list[str] | None = None, params_path: str = "params.yaml") -> dict:
    """Per table of the real-data study: one retrain from scratch as the study runs it (MAP with the shipped
    training, then the full-GGN posterior), measured, and the study's retrains extrapolated from it (each event
    fits `retrain.seeds` retrains and one reference retrain for the membership test). Key "study_cost"."""
    from bayesunlearn.experiments import events
    from bayesunlearn.io import settings as settings_module
    from bayesunlearn.model.likelihood import objective
    from bayesunlearn.posteriors.fit import FitSettings, fit_from_scratch

    params = settings_module.load(params_path)
    study = params.real_study
    out: dict = {"polish": params.train.polish, "polish_iterations": params.train.polish_iterations,
                 "grad_tolerance": params.train.grad_tolerance, "fits_per_event": params.retrain.seeds + 1,
                 "tables": {}}
    for name in tables or study.datasets:
        table = events.load_table(name, params.prepare, study.max_train_records)
        model = table.model(params.model)
        started = time.perf_counter()
        posterior, _ = fit_from_scratch(events.BASE_KIND, model, table.x, table.y, params.train.seed + 1,
                                        params.train, FitSettings.of(params))
        seconds = time.perf_counter() - started
        grad = float(np.linalg.norm(objective(model, posterior.mean, table.x, table.y)[1]))
        n_events = len(events.events(table, study))
        out["tables"][name] = {"n_train": len(table.x), "n_params": model.spec.n_params, "retrain_seconds": seconds,
                               "measured": True, "grad_norm": grad, "events": n_events,
                               "retrains_hours_extrapolated": seconds * n_events * out["fits_per_event"] / 3600}
    out["retrains_hours_extrapolated"] = sum(t["retrains_hours_extrapolated"] for t in out["tables"].values())
    return out


def cost_block(report: dict) -> str:
    """The docs table of `study_cost`."""
    import pandas as pd

    from bayesunlearn.experiments.report import markdown

    rows = [{"table": name, "records × parameters": f"{t['n_train']:,} × {t['n_params']:,}",
             "one retrain (s, measured)": t["retrain_seconds"], "its |∇L|": t["grad_norm"], "events": t["events"],
             "retrains of a study rerun (h, extrapolated)": t["retrains_hours_extrapolated"]}
            for name, t in report["tables"].items()]
    return (markdown(pd.DataFrame(rows)) + f"\n\nIn all, about {report['retrains_hours_extrapolated']:.1f} hours of "
            f"retrains ({report['fits_per_event']} per event; `train.polish: {report['polish']}`, at most "
            f"{report['polish_iterations']} iterations), extrapolated from one measured retrain per table.")


def block(report: dict) -> str:
    """The docs table: per table, the production method's events and what the membership test made of them."""
    import pandas as pd

    from bayesunlearn.experiments.report import markdown

    rows = []
    for name, t in report["tables"].items():
        m, c = t["membership"], t["confusion"]
        rows.append({"table": name, "events": t["events"], "median gain": t["median_gain"],
                     "fast path": c["fast_path_helped"] + c["fast_path_harmed"] + c["fast_path_immaterial"],
                     "harmful, predictive": sum(1 for r in t["rows"] if r["method"] == report["method"]
                                                and r["harmed_predictive"]),
                     "original objected to (power)": m["with_power"], "objected to": m["objected"],
                     "harmful by it alone": m["added"], "of them on the fast path": m["added_on_fast_path"],
                     "shadows' loss spread (nats)": t["median_shadow_loss_spread"],
                     "a retrain (s)": t["retrain_seconds"]})
    return markdown(pd.DataFrame(rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="*", help="tables (default: the study's classification tables)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--write", action="store_true", help=f"store the result as {KEY!r} in docs/bench.json")
    parser.add_argument("--cost", action="store_true",
                        help=f"instead: time one retrain per table and extrapolate the study's ({COST_KEY!r})")
    args = parser.parse_args(argv)
    key = COST_KEY if args.cost else KEY
    result = (study_cost if args.cost else measure)(args.tables or None, args.params)
    if args.write:
        from bench.summary import store

        store(key, result)
    json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
