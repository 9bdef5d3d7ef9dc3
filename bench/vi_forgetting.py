"""Does a VI method move, and move towards the retrains, on the real regression tables?

The real-data study's own event code (experiments/events.run_event) on the random deletions of at most
`SMALL` (10 %) of the regression tables of `real_study.datasets` (or the tables named), for every configured VI
method (`methods` entries whose posterior is a VI kind), at the seeds given (default: the study's first), judged
as the study judges: gain against the retrains of the method's own kind, the audit's verdict with the membership
objection, and the gate. `--retrains` retrains per event are the shadows of the membership test, and one more
retrain is its reference; every retrain runs the shipped training (`train`), so each is measured, none
extrapolated. Per table and method: events, median gain, harmed, fast path and harmed on it, and the median
wall time of the operator on the largest deletion beside the measured retrain (the original's fit from scratch:
its MAP and its posterior of the method's kind).

`python -m bench.vi_forgetting [TABLE ...]` prints the JSON; `--write` also stores it as "vi_forgetting" in
docs/bench.json. Two processes can share a table's events (`--fractions 0.01 0.05 > a.json` beside
`--fractions 0.1 > b.json`), and `--merge a.json b.json` makes one report of them. Cost: diamonds'
retrains run the Newton polish's whole budget (about 8 minutes each on 2 cores), so three events there take
about an hour and a half.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

KEY = "vi_forgetting"


def measure(tables: list[str] | None, seeds: list[int] | None, retrains: int, params_path: str = "params.yaml",
            fractions: list[float] | None = None, log: str | None = None) -> dict:
    """The report. `fractions` (default: the study's of at most 10 %) and `seeds` choose the events (a table's
    events can be split over processes and their reports merged: the original is seeded, so every process fits
    the same one); `log` appends each event's rows to a JSON-lines file as it ends."""
    import pandas as pd

    from bayesunlearn.experiments import events
    from bayesunlearn.experiments.confusion import SMALL
    from bayesunlearn.experiments.evaluation import time_warm
    from bayesunlearn.io import settings as settings_module
    from bayesunlearn.io.progress import progress
    from bayesunlearn.kinds import KINDS
    from bayesunlearn.model.training import fit_map
    from bayesunlearn.posteriors.fit import FitSettings, fit_posterior

    params = settings_module.load(params_path)
    study = params.real_study
    methods = {name: m for name, m in params.methods.items() if KINDS[m.posterior].family == "vi"}
    setup = events.Setup(methods, params.train, FitSettings.of(params), params.train.seed, retrains, params.gate,
                         params.audit, [])
    seeds = seeds if seeds is not None else study.seeds[:1]
    fractions = fractions or [f for f in study.fractions if f <= SMALL]
    out: dict = {"methods": {name: m.model_dump(exclude_none=True) for name, m in methods.items()},
                 "retrains": retrains, "seeds": seeds, "vi_steps": params.vi.steps, "tables": {}}
    for name in tables or regression_tables(params):
        table = events.load_table(name, params.prepare, study.max_train_records)
        model = table.model(params.model)
        started = time.perf_counter()
        theta, _ = fit_map(model, table.x, table.y, model.spec.init(setup.seed0), setup.train)
        map_seconds = time.perf_counter() - started
        originals, fit_seconds = {}, {}
        for kind in setup.kinds:  # the original is a fit from scratch: a retrain's cost, measured
            started = time.perf_counter()
            originals[kind] = fit_posterior(kind, model, theta, table.x, table.y, setup.fit)
            fit_seconds[kind] = map_seconds + time.perf_counter() - started
        deletions = [events.Event("random", s, f, "", events.forget_mask(table.x, "random", f, s))
                     for f in sorted(fractions) for s in seeds]
        rows = []
        for event in progress(deletions, desc=f"VI forgetting: {name}", unit="event"):
            rows += events.run_event(table, event, originals, setup).rows
            if log:  # each event's rows as they come: hours of retrains are not lost to a stop
                with open(log, "a") as stream:
                    stream.write(pd.DataFrame(rows[-len(methods):]).to_json(orient="records") + "\n")
        splits = events.splits_of(table, deletions[-1])  # the largest deletion of this run
        seconds = {m: time_warm(lambda m=m: events.attempt(methods[m], originals[methods[m].posterior], splits), 1)
                   for m in methods}
        frame = pd.DataFrame(rows).sort_values(["fraction", "seed", "method"], ignore_index=True)
        out["tables"][name] = {
            "n_train": len(table.x), "n_params": model.spec.n_params,
            "events": int(frame[["fraction", "seed"]].drop_duplicates().shape[0]), "map_seconds": map_seconds,
            "methods": {m: summary(group) | {"seconds": seconds[m], "retrain_measured": True,
                                             "retrain_seconds": fit_seconds[methods[m].posterior],
                                             "posterior_fit_seconds": fit_seconds[methods[m].posterior] - map_seconds}
                        for m, group in frame.groupby("method")},
            "rows": json.loads(frame.to_json(orient="records"))}
    return out


def merged(reports: list[dict]) -> dict:
    """Reports of the same tables on disjoint events (processes run side by side) as one: rows joined, summaries
    recomputed, and each method's times taken from the report holding the table's largest deletion."""
    import pandas as pd

    out = reports[0] | {"tables": {}, "seeds": sorted({s for r in reports for s in r["seeds"]})}
    for name in reports[0]["tables"]:
        parts = [r["tables"][name] for r in reports]
        frame = (pd.DataFrame([row for t in parts for row in t["rows"]]).drop_duplicates(["fraction", "seed", "method"])
                 .sort_values(["fraction", "seed", "method"], ignore_index=True))
        timed = max(parts, key=lambda t: max(row["fraction"] for row in t["rows"]))
        out["tables"][name] = timed | {
            "events": int(frame[["fraction", "seed"]].drop_duplicates().shape[0]),
            "methods": {m: timed["methods"][m] | summary(group)
                        for m, group in frame.groupby("method")},
            "rows": json.loads(frame.to_json(orient="records"))}
    return out


def summary(rows) -> dict:
    """One method's events on one table: median gain, harm, the gate's decisions and the membership objections."""
    fast = rows["gate"] == "pass"
    return {"median_gain": float(rows["gain"].median()), "gains": rows["gain"].tolist(),
            "harmed": int(rows["harmed"].sum()), "failed": int(rows["failed"].sum()), "fast_path": int(fast.sum()),
            "fast_path_harmed": int((fast & (rows["harmed"] == 1)).sum()),
            "membership_objections": int(rows["membership_objection"].sum())}


def regression_tables(params) -> list[str]:
    """The real-data study's tables with a real target."""
    from bayesunlearn.io import datasets

    return [name for name in params.real_study.datasets if datasets.PACKAGED[name].classes is None]


GAIN_TARGET = 0.7     # issue 27: some VI method below it on the random deletions of every regression table
NATS_TARGET = 0.3     # and the VI predictive within it of the GGN-Laplace one on the UCI protocol,
PROTOCOL_SPLITS = 20  # whose standard form has 20 splits (fewer: the target is not judged met)


def targets(report: dict, required: list[str], protocol: dict | None = None) -> dict:
    """Issue 27's VI targets: a VI method whose median gain is below GAIN_TARGET on every `required` table (the
    study's regression tables; one not measured fails the target), with no harmful event on the fast path; and
    full-covariance VI's test log-likelihood on the UCI protocol (its PROTOCOL_SPLITS splits) within NATS_TARGET of
    the full-GGN Laplace one."""
    tables = report["tables"]
    missing = sorted(set(required) - set(tables))
    methods = sorted(set.intersection(*(set(t["methods"]) for t in tables.values()))) if tables else []

    def meets(m: str) -> bool:
        return all(t["methods"][m]["median_gain"] < GAIN_TARGET and t["methods"][m]["fast_path_harmed"] == 0
                   for t in tables.values())

    best = min(methods, key=lambda m: max(t["methods"][m]["median_gain"] for t in tables.values()), default=None)
    out = {"vi_median_gain_below_0_7_on_regression_tables": {
        "met": best is not None and meets(best) and not missing, "method": best, "tables": sorted(tables),
        "not_measured": missing,
        "median_gain": {name: t["methods"][best]["median_gain"] for name, t in tables.items()} if best else {},
        "events": {name: t["events"] for name, t in tables.items()}}}
    if protocol is not None and "vi_full" in protocol["test_log_likelihood"]:
        ll = protocol["test_log_likelihood"]
        gap = ll["ggn_laplace"]["mean"] - ll["vi_full"]["mean"]
        out["vi_predictive_within_0_3_nats_of_ggn_laplace"] = {"met": bool(gap <= NATS_TARGET
                                                                           and protocol["splits"] >= PROTOCOL_SPLITS),
                                                               "gap_nats": gap,
                                                               "splits": protocol["splits"],
                                                               "source": protocol["source"]}
    return out


def block(report: dict) -> str:
    """The docs table: per table and VI method, the median gain over the events, harm, and time beside a retrain."""
    import pandas as pd

    from bayesunlearn.experiments.report import markdown

    rows = [{"table": name, "method": m, "events": t["events"], "median gain": r["median_gain"],
             "harmed": r["harmed"], "failed": r["failed"],
             "fast path (harmed)": f"{r['fast_path']} ({r['fast_path_harmed']})",
             "operator (s)": r["seconds"], "retrain (s, measured)": r["retrain_seconds"]}
            for name, t in report["tables"].items() for m, r in t["methods"].items()]
    fits = {name: t["methods"][m]["posterior_fit_seconds"] for name, t in report["tables"].items()
            for m, r in t["methods"].items() if m.startswith("vi_full")}
    return (markdown(pd.DataFrame(rows)) + f"\n\n{report['retrains']} retrains per event and one reference retrain, "
            f"random deletions of at most 10 % at seeds {report['seeds']}; a full-covariance VI fit "
            f"({report['vi_steps']:,} steps) took " + ", ".join(f"{s:.0f} s on {name}" for name, s in fits.items())
            + " (in the retrain column, after the MAP).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="*", help="tables (default: the study's regression tables)")
    parser.add_argument("--seeds", type=int, nargs="*", help="deletion seeds (default: the study's first)")
    parser.add_argument("--retrains", type=int, default=2, help="retrains per event, the membership test's shadows")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="instead: join these reports of disjoint events (printed by runs side by side)")
    parser.add_argument("--write", action="store_true", help=f"store the result as {KEY!r} in docs/bench.json")
    parser.add_argument("--fractions", type=float, nargs="*", help="random deletions (default: the study's ≤ 10 %%)")
    parser.add_argument("--log", help="append each event's rows to this JSON-lines file as the event ends")
    args = parser.parse_args(argv)
    if args.merge:
        result = merged([json.loads(open(path).read()) for path in args.merge])
    else:
        result = measure(args.tables or None, args.seeds, args.retrains, args.params, args.fractions, args.log)
    if args.write:
        from bench.summary import store

        store(KEY, result)
    json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
