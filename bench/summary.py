"""The benchmark's numbers for docs/benchmark.md, rendered from the last full `make bench` (docs/bench.json).

`python -m bench.run` (every part) saves its JSON to docs/bench.json as well;
`python -m bench.docs` renders these tables
into docs/benchmark.md, and a test checks they are current.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench import uci

BENCH = Path("docs/bench.json")


def store(key: str, value: dict, path: Path = BENCH) -> None:
    """One bench key written into docs/bench.json, every other key kept (a part run on its own: `--write`)."""
    from bayesunlearn.io import atomic

    atomic.write_json(path, {**json.loads(path.read_text()), key: value})


def _table(rows: list[dict], floatfmt: str = ".3g") -> str:
    """A markdown table; a cell a row lacks (a skipped case) shows as —."""
    return tabulate(pd.DataFrame(rows).fillna("—"), headers="keys", tablefmt="github", floatfmt=floatfmt,
                    showindex=False)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def bench_block(path: Path = BENCH) -> str:
    if not path.exists():
        return "(no full benchmark run recorded yet: run `make bench`)"
    bench = json.loads(path.read_text())
    parts = []
    if "random" in bench:
        parts += ["**The default method** (GGN Laplace, Newton step) on the default data, 10 % forgotten at random "
                  "and the whole right cluster forgotten:", "",
                  _table([{"case": case, "unlearn s": bench[case]["unlearn_seconds"],
                           "retrain s": bench[case]["retrain_seconds"], "speedup": _fmt(bench[case]["speedup"]),
                           "gain": bench[case]["gain"], "indistinguishability": bench[case]["indistinguishability"]}
                          for case in ("random", "cluster")]), ""]
    if "finetune" in bench:
        rows = []
        for case in [c for c in ("random", "cluster") if c in bench["finetune"]]:
            rows.append({"case": case, "forgetting": "default method (Newton step)",
                         "seconds": bench[case]["unlearn_seconds"], "gain": bench[case]["gain"],
                         "indistinguishability": bench[case]["indistinguishability"]})
            rows += [{"case": case, "forgetting": f"fine-tuning, {r['steps']:,} Adam steps ({budget.replace('_', ' ')})",
                      "seconds": r["seconds"], "gain": r["gain"], "indistinguishability": r["indistinguishability"]}
                     for budget, r in sorted(bench["finetune"][case].items(), key=lambda item: item[1]["budget_seconds"])]
        parts += ["**Against fine-tuning** (Adam from θ* on the retained records, within the default method's "
                  "time and ten times it; gain below 1 means closer to the retrains than the original):", "",
                  _table(rows), ""]
    if "main_job" in bench or "intake_latency" in bench:
        rows = []
        if "main_job" in bench:
            rows.append({"what": "`make repro` from a fresh clone (nothing cached)",
                         "seconds": bench["main_job"]["seconds"]})
        if "every_method" in bench:
            every = bench["every_method"]
            rows.append({"what": f"untargeted `dvc repro` from a fresh clone ({every['stages_run']} stages)",
                         "seconds": every["seconds"]})
        if "intake_latency" in bench:
            latency = bench["intake_latency"]
            rows += [{"what": "intake: inbox file → served posterior (server running)",
                      "seconds": latency["total_seconds"]},
                     *[{"what": f"  of which `dvc repro {stage}`", "seconds": seconds}
                       for stage, seconds in latency["stage_seconds"].items()],
                     {"what": "  of which the flow itself (triage, git, ledger, artifacts)",
                      "seconds": latency["flow_overhead_seconds"]}]
        if "dvc_noop_seconds" in bench:
            rows.append({"what": f"no-op `dvc repro` over {bench['dvc_noop_stages']} stages",
                         "seconds": bench["dvc_noop_seconds"]})
        parts += ["**Latency:**", "", _table(rows, floatfmt=".4g"), ""]  # ".3g" prints 1581 s as 1.58e+03
    if "scale" in bench:
        done = [r for r in bench["scale"] if "speedup" in r]
        grid = {}
        for r in done:
            row = grid.setdefault((r["method"], r["n_params"]), {"method": r["method"], "params": r["n_params"]})
            row[f"n={r['n_train']:,}"] = f"{r['speedup']:,.0f}×"
            row["unlearn s"] = max(row.get("unlearn s", 0.0), r["unlearn_seconds"])
            row["peak MB"] = max(row.get("peak MB", 0), round(r["peak_mb"]))
        parts += ["**Scale:** unlearning a fixed 50 records against a cold retrain (Adam + posterior fit), "
                  "per network size and n; `unlearn s` and `peak MB` (whole process) are the largest over n:", "",
                  _table(sorted(grid.values(), key=lambda r: (r["method"], r["params"])), ".3g"), ""]
    if "compute" in bench:
        c = bench["compute"]
        rows = [{"choice": f"Jacobians, NumPy backprop vs `vectorized_map` ({j['n_params']} params)",
                 "ratio": j["numpy_speedup_vs_vectorized_map"]} for j in c["jacobians"] if "numpy_speedup_vs_vectorized_map" in j]
        rows += [{"choice": f"Jacobians, `vectorized_map` vs `tape.jacobian` ({j['n_params']} params)",
                  "ratio": j["speedup_vs_tape_jacobian"]} for j in c["jacobians"]]
        rows += [{"choice": f"XLA Adam vs plain ({x['n_params']} params)", "ratio": x["xla_speedup"]} for x in c["xla"]]
        rows += [{"choice": f"Woodbury in place vs refactorising ({d['n_params']} params)",
                  "ratio": d["speedup_in_place_vs_refactorise"]} for d in c["downdate"]]
        g = c["ggn_accumulation"]
        rows.append({"choice": "GGN over row batches (SYRK): memory of one-shot JᵀJ / batched",
                     "ratio": g["one_shot_peak_increment_mb"] / max(g["batched_peak_increment_mb"], 1e-9)})
        parts += ["**Compute choices** (ratios above 1 favour the first):", "", _table(rows), ""]
    for source, real in bench.get("real", {}).items():
        if "protocol" not in real:  # a table of the real-data study only (docs/methods.md shows it)
            continue
        p = real["protocol"]

        def cell(stat: dict) -> str:
            return f"{stat['mean']:.2f} ± {stat['se']:.2f}"

        rows = [{"predictive": name, "test RMSE": cell(p["test_rmse"][name]),
                 "test log-likelihood": cell(p["test_log_likelihood"][name])}
                for name in uci.PREDICTIVES if name in p["test_rmse"]]
        parts += [f"**The UCI protocol on {source}** ({p['n_records']:,} records, {p['n_inputs']} inputs; "
                  f"{p['splits']} random 90/10 splits, 50 {p['activation']} units; mean ± standard error, "
                  "original units):", "", _table(rows), ""]
    if "gate_confusion" in bench:
        c = bench["gate_confusion"]["production"]
        parts += [f"**The gate on the real-data study** ({bench['gate_confusion']['production_method']}): "
                  f"{c['fast_path_harmed']} harmful event{'' if c['fast_path_harmed'] == 1 else 's'} on the fast path, "
                  f"{c['small_random_fast_path']} of "
                  f"{c['small_random_events']} random deletions of at most 10 % on the fast path "
                  f"(docs/methods.md, \"On real tables\").", ""]
    if "targets" in bench:
        rows = [{"target": name, "met": value.get("met", value.get("met_process_peak"))}
                for name, value in bench["targets"].items()]
        parts += ["**Targets:**", "", _table(rows)]
    return "\n".join(parts).rstrip()
