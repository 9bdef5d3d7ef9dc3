"""Forgetting on the classification tables against the practitioner's baseline: the served method, the same
method refined to a mode of the retained objective (`refine_tolerance`), and fine-tuning in the same wall time.

The random deletions of the real-data study (`real_study.fractions` × `real_study.seeds`, the same tables,
originals and retrains, bit-reproducible: the served method's gains are the study's), on each classification
table of `real_study.datasets` (or the tables named). Per event and candidate: the gain and the
indistinguishability against `retrain.seeds` retrains (experiments/evaluation.compare), the warm wall time, and
the passes over the retained records (a fine-tuning step is one; refining reports its own). Candidates:
- `served`: `gate.method` as configured;
- `to_mode`: the served method with `refine: BUDGET` and `refine_tolerance: train.grad_tolerance` (the
  tolerance every retrain's MAP is held to), unless it already refines to a tolerance;
- `finetune_same_time`: Adam from θ* on the retained records for as many steps as fit in `to_mode`'s wall time
  (bench/finetune.steps_within), and the study's fixed budgets `finetune_<steps>`.
A warm retrain from scratch (MAP and full-GGN posterior) is timed once per table, on its first event of at most
10 %, as the study times it. `meets` per table: `to_mode`'s median gain at most `finetune_same_time`'s.
`python -m bench.classifiers [TABLE ...]` prints the JSON; `--write` also stores it as "classifier_forgetting" in
docs/bench.json. About 15 minutes on 2 busy cores, most of it the retrains.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bayesunlearn.experiments.events import Table
    from bayesunlearn.io.settings import Settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

BUDGET = 200  # Newton steps of `to_mode` (the study's events take at most about 70)
REPEATS = 3   # warm timing repeats (median)
KEY = "classifier_forgetting"


def classification_tables(params: Settings, names: list[str] | None) -> Iterator[Table]:
    """The tables named, else the real-data study's classification tables, loaded as the study loads them."""
    from bayesunlearn.experiments import events

    for name in names or params.real_study.datasets:
        table = events.load_table(name, params.prepare, params.real_study.max_train_records)
        if table.classifier or names:
            yield table


def measure(tables: list[str] | None = None, params_path: str = "params.yaml") -> dict:
    from bayesunlearn.experiments import events
    from bayesunlearn.experiments.confusion import SMALL
    from bayesunlearn.io import settings as settings_module
    from bayesunlearn.io.progress import progress
    from bayesunlearn.posteriors.fit import FitSettings

    params = settings_module.load(params_path)
    study, served = params.real_study, params.method(params.gate.method)
    to_mode = served if served.refine_tolerance is not None else served.model_copy(
        update={"refine": BUDGET, "refine_tolerance": params.train.grad_tolerance})
    setup = events.Setup({"served": served, "to_mode": to_mode}, params.train, FitSettings.of(params),
                         params.train.seed, params.retrain.seeds, params.gate, params.audit, study.finetune_steps)
    out: dict = {"method": params.gate.method, "refine_budget": to_mode.refine,
                 "refine_tolerance": to_mode.refine_tolerance, "retrains": params.retrain.seeds, "tables": {}}
    for table in classification_tables(params, tables):
        name, model = table.name, table.model(params.model)
        originals = events.fit_originals(model, table, setup)
        random = [e for e in events.events(table, study) if e.mode == "random"]
        rows, retrain_seconds = [], None
        for event in progress(random, desc=f"classifiers: {name}", unit="event"):
            rows.append(_event(table, event, originals, setup))
            if retrain_seconds is None and event.fraction <= SMALL:
                retrain_seconds = events.time_event(table, event, originals, _untimed(setup), 1)["retrain"]
        out["tables"][name] = {"n_train": len(table.x), "n_params": model.spec.n_params,
                               "retrain_seconds": retrain_seconds, "events": rows, **_summary(rows, retrain_seconds)}
    return out


def _untimed(setup):
    """The setup with no methods and no fine-tuning: time_event then times the retrain alone."""
    from dataclasses import replace

    return replace(setup, methods={}, finetune_steps=[])


def _event(table, event, originals, setup) -> dict:
    from bayesunlearn.experiments import events
    from bayesunlearn.experiments.evaluation import compare, time_warm
    from bayesunlearn.experiments.privacy import shadows
    from bench import finetune

    splits = events.splits_of(table, event)
    original = originals[events.BASE_KIND]
    retrains = shadows(events.BASE_KIND, original.model, splits.x_retained, splits.y_retained,
                       range(setup.seed0, setup.seed0 + setup.n_retrains), setup.train, setup.fit)
    row: dict = {"fraction": event.fraction, "seed": event.seed, "n_forgotten": int(event.mask.sum())}

    def judged(name: str, posterior, seconds: float, passes: int, **extra) -> None:
        c = compare(original, posterior, retrains, splits, parameter_space=False)
        row[name] = {"gain": c["gain"], "indistinguishability": c["indistinguishability"], "seconds": seconds,
                     "passes": passes, **extra}

    for name, method in setup.methods.items():
        posterior, report = events.attempt(method, originals[method.posterior], splits)
        seconds = time_warm(lambda m=method: events.attempt(m, originals[m.posterior], splits), REPEATS)
        passes = report.get("refine_passes", report.get("refine_steps", 0) + 1 if method.refine else 0)
        extra = {k: report[k] for k in ("refine_steps", "refine_grad_norm", "refine_converged") if k in report}
        judged(name, posterior, seconds, passes, **extra)
    budget = row["to_mode"]["seconds"]
    steps = finetune.steps_within(budget, original, splits, setup.train)
    for name, n in (("finetune_same_time", steps), *((f"finetune_{n}", n) for n in setup.finetune_steps)):
        judged(name, finetune.finetune(original, splits, setup.train, n),
               finetune.seconds(original, splits, setup.train, n, REPEATS), n)
    return row


def _summary(rows: list[dict], retrain_seconds: float | None) -> dict:
    """Medians per candidate over the table's events, and whether `to_mode` is at least as close as fine-tuning
    in the same time."""
    names = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    medians = {name: {f"median_{figure}": statistics.median(r[name][figure] for r in rows)
                      for figure in ("gain", "indistinguishability", "seconds", "passes")} for name in names}
    if retrain_seconds:
        for figures in medians.values():
            figures["median_seconds_over_retrain"] = figures["median_seconds"] / retrain_seconds
    medians["to_mode"]["converged"] = sum(r["to_mode"].get("refine_converged", False) for r in rows)
    meets = medians["to_mode"]["median_gain"] <= medians["finetune_same_time"]["median_gain"]
    return {"medians": medians, "meets": meets}


CANDIDATES = {"served": "served ({method})", "to_mode": "refined to a mode (refine_tolerance {tolerance:g})",
              "finetune_same_time": "fine-tuning, same wall time"}


def block(report: dict) -> str:
    """The docs table: per table and candidate (the study's fixed fine-tuning budgets after them), the medians
    over the random deletions."""
    import pandas as pd

    from bayesunlearn.experiments.report import markdown

    rows = []
    for table, result in report["tables"].items():
        medians = result["medians"]
        for name in [*CANDIDATES, *sorted(set(medians) - set(CANDIDATES))]:
            figures = medians[name]
            label = CANDIDATES.get(name, name.replace("finetune_", "fine-tuning, ") + " steps")
            rows.append({"table": table, "candidate": label.format(method=report["method"],
                                                                   tolerance=report["refine_tolerance"]),
                         "median gain": figures["median_gain"],
                         "median indistinguishability": figures["median_indistinguishability"],
                         "median passes over D_r": figures["median_passes"],
                         "median seconds": figures["median_seconds"],
                         "× retrain": figures.get("median_seconds_over_retrain")})
    lines = [markdown(pd.DataFrame(rows)), ""]
    for table, result in report["tables"].items():
        events = len(result["events"])
        verdict = "at least as close to the retrains as" if result["meets"] else "further from the retrains than"
        lines.append(f"- {table} ({result['n_train']} records, {result['n_params']} parameters): a warm retrain "
                     f"takes {result['retrain_seconds']:.2g} s; refining converged on "
                     f"{result['medians']['to_mode']['converged']} of {events} events; refined to a mode is "
                     f"{verdict} fine-tuning in the same wall time.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="*", help="tables (default: the study's classification tables)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--write", action="store_true", help=f"store the result as {KEY!r} in docs/bench.json")
    args = parser.parse_args(argv)
    result = measure(args.tables or None, args.params)
    if args.write:
        from bench.summary import store

        store(KEY, result)
    json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
