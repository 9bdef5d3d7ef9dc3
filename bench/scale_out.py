"""Scale-out benchmark: the KFAC and subnetwork posteriors past one machine's memory, fitted on Dask.

Networks (16 inputs, tanh): "100k" = hidden (300, 300), 95,701 parameters; "1M" = hidden (1000, 1000),
1,019,001 parameters. Data: synthetic regression, x ~ N(0, I₁₆), y = sin(x₀)·x₁ + x₂/2 + N(0, 0.1²),
written once per n as a prepared table (record_id, features, y; the pipeline's CSV format): each
Dask task reads only its shard's rows of it, as `fit_posterior` does with `laplace.shards`.
θ* is the pipeline's seeded initialisation: costs do not depend on how well it fits.

Per (network, n, structure):
- fit_seconds {1, 2 workers}: the curvature map-reduce over `SHARDS` shards on a local cluster of
  that many worker processes with one thread each (the ratio measures scaling, not threads), plus
  building the posterior; both fits must give the same bytes (checked);
- shard_seconds (all tasks' compute time) and reduce_seconds (adding the partial sums), from which
  the README's plan extrapolates to N workers: fit(N) ≈ shard/N + reduce + the measured overhead;
- unlearn_seconds {50, 1000 records}: forgetting them from the fitted posterior, in this process;
- retrain_seconds: a cold retrain = `train.adam_steps` full-batch Adam steps, timed over `ADAM_STEPS`
  warm steps on min(n, ADAM_ROWS) records and scaled linearly to the steps and to n (a full-batch
  step's cost is linear in n), plus the 1-worker posterior fit;
- peak_mb: VmHWM of each worker process over the fit, and of this process over the unlearning
  (reset before it), minus nothing: whole processes.
`python -m bench.scale_out` prints the JSON; `make bench` adds it as "scale_out".
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.scale import memory_mb, reset_peak

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

NETWORKS = {"100k": (300, 300), "1M": (1000, 1000)}
CASES = (("100k", 50_000), ("100k", 1_000_000), ("1M", 50_000))
STRUCTURES = ("kfac", "subnetwork")
SUBNETWORK_SIZE = 1000   # S: the dense block is S² = 8 MB
FORGET = (50, 1000)
SHARDS = 8
ADAM_STEPS = 3
ADAM_ROWS = 50_000
INPUTS = 16


def write_table(path: Path, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    from bayesunlearn.io import datasets, store

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, INPUTS))
    y = np.sin(x[:, 0]) * x[:, 1] + 0.5 * x[:, 2] + rng.normal(0, 0.1, n)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(INPUTS)])
    frame.insert(0, datasets.ID, [f"r{i}" for i in range(n)])
    frame[datasets.TARGET] = y
    store.save_table(path, frame)
    return x, y


def model_for(network: str):
    """The model and θ*: the pipeline's initialisation (MLPSpec.init), not a trained MAP."""
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    spec = MLPSpec(INPUTS, NETWORKS[network])
    return RegressionModel(spec, prior_precision=1.0, noise_std=0.1), spec.init(0)


def _worker_peak_mb() -> float:
    return memory_mb("VmHWM")  # in a worker process: its own peak


def fit_on(workers: int, structure: str, model, theta, shards) -> tuple[float, dict, object]:
    """Fit on a fresh local cluster of `workers` processes (one thread each): seconds, timings, posterior."""
    from distributed import Client, LocalCluster, get_task_stream

    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.posteriors.sharded import add, sharded_curvature

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: None)  # workers up before the clock starts
        with get_task_stream(client) as stream:
            start = time.perf_counter()
            data = sharded_curvature(structure, model, theta, shards, client, SUBNETWORK_SIZE)
            posterior = fit_laplace(model, theta, np.zeros((0, INPUTS)), np.zeros(0), structure, data,
                                    SUBNETWORK_SIZE)
            seconds = time.perf_counter() - start
        peaks = client.run(_worker_peak_mb)
    shard_seconds = sum(stop["stop"] - stop["start"] for task in stream.data for stop in task["startstops"]
                        if stop["action"] == "compute")
    parts = [data] * len(shards)  # adding len(shards) partial sums of this size: the reduce's cost
    start = time.perf_counter()
    total = parts[0]
    for part in parts[1:]:
        total = add(total, part)
    reduce_seconds = time.perf_counter() - start
    return seconds, {"shard_seconds": shard_seconds, "reduce_seconds": reduce_seconds,
                     "worker_peak_mb": round(max(peaks.values()), 1)}, posterior


def same_bytes(a, b) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        a.save(Path(tmp) / "a.npz")
        b.save(Path(tmp) / "b.npz")
        return (Path(tmp) / "a.npz").read_bytes() == (Path(tmp) / "b.npz").read_bytes()


def retrain_seconds(model, x: np.ndarray, y: np.ndarray, adam_steps: int, learning_rate: float) -> float:
    """The cold retrain's Adam steps on min(n, ADAM_ROWS) records, timed as bench/scale.py times them and
    scaled linearly to n."""
    from bayesunlearn.model.autodiff import as_tensor
    from bayesunlearn.model.tf import tf
    from bayesunlearn.model.training import run_adam
    from bench.scale import time_adam

    tf.config.experimental.enable_op_determinism()
    rows = min(len(x), ADAM_ROWS)
    args = (model, as_tensor(x[:rows]), as_tensor(y[:rows]), as_tensor(model.spec.init(1)))
    steps, seconds = time_adam(lambda k: run_adam(*args, k, learning_rate).numpy(), ADAM_STEPS, adam_steps)
    return seconds / steps * adam_steps * len(x) / rows


def case(network: str, n: int, folder: Path, adam_steps: int, learning_rate: float) -> dict:
    from bayesunlearn.posteriors.sharded import shards_of
    from bayesunlearn.unlearning.divide import forget

    table = folder / f"train-{n}.csv"
    x, y = write_table(table, n)
    model, theta = model_for(network)
    shards = shards_of(table, n, SHARDS)
    cold = retrain_seconds(model, x, y, adam_steps, learning_rate)
    out = {"network": network, "hidden": list(NETWORKS[network]), "n_params": model.spec.n_params, "n": n,
           "shards": SHARDS, "adam_seconds": cold}
    forgotten = np.random.default_rng(3).permutation(n)
    for structure in STRUCTURES:
        one, timing, posterior = fit_on(1, structure, model, theta, shards)
        two, timing_two, posterior_two = fit_on(2, structure, model, theta, shards)
        row = {"fit_seconds": {"1": one, "2": two}, "fit_speedup_2_workers": one / two,
               "same_bytes_1_and_2_workers": same_bytes(posterior, posterior_two), **timing,
               "worker_peak_mb_2_workers": timing_two["worker_peak_mb"], "unlearn_seconds": {}, "speedup": {}}
        row["overhead_seconds"] = one - timing["shard_seconds"] - timing["reduce_seconds"]
        row["retrain_seconds"] = cold + one
        del posterior_two
        peak = 0.0
        for count in FORGET:
            rows = forgotten[:count]
            reset_peak()
            start = time.perf_counter()
            forget(posterior, x[rows], y[rows])
            seconds = time.perf_counter() - start
            peak = max(peak, memory_mb("VmHWM"))
            row["unlearn_seconds"][str(count)] = seconds
            row["speedup"][str(count)] = row["retrain_seconds"] / seconds
        row["unlearn_peak_mb"] = round(peak, 1)
        out[structure] = row
        print(f"scale_out {network} n={n} {structure}: fit {one:.1f}s / {two:.1f}s, forget 1000 in "
              f"{row['unlearn_seconds']['1000']:.2f}s", file=sys.stderr)
    return out


def targets(rows: list[dict]) -> dict:
    """The issue's targets: forgetting ≥ 1000× faster than a cold retrain at n ≥ 50k, ≤ 4 GB per process at
    1M parameters, the 2-worker fit ≥ 1.6× faster at n = 1M (None where no case measures it)."""
    speedups = [r[s]["speedup"][k] for r in rows if r["n"] >= 50_000 for s in STRUCTURES for k in r[s]["speedup"]]
    peaks = [max(r[s]["worker_peak_mb"], r[s]["worker_peak_mb_2_workers"], r[s]["unlearn_peak_mb"])
             for r in rows if r["n_params"] >= 1_000_000 for s in STRUCTURES]
    scaling = [r[s]["fit_speedup_2_workers"] for r in rows if r["n"] >= 1_000_000 for s in STRUCTURES]
    out = {"min_speedup_n_50k": min(speedups, default=None), "max_peak_mb_1m_params": max(peaks, default=None),
           "min_fit_speedup_2_workers_n_1m": min(scaling, default=None)}
    limits = {"min_speedup_n_50k": (1000, True), "max_peak_mb_1m_params": (4096, False),
              "min_fit_speedup_2_workers_n_1m": (1.6, True)}
    out["meets"] = {key: None if out[key] is None else (out[key] >= limit if above else out[key] <= limit)
                    for key, (limit, above) in limits.items()}
    return out


def _plan_key(row: dict, structure: str) -> str:
    return f"{row['network']} n={row['n']} {structure}"


def plan(rows: list[dict], workers: tuple[int, ...] = (1, 2, 4, 8, 16)) -> dict:
    """fit(N) ≈ shard/N + reduce + overhead per case and structure, from its 1-worker run."""
    out = {}
    for r in rows:
        for s in STRUCTURES:
            w = r[s]
            out[_plan_key(r, s)] = {str(k): w["shard_seconds"] / k + w["reduce_seconds"]
                                                    + max(0.0, w["overhead_seconds"]) for k in workers}
    return out


def run(cases=CASES) -> dict:
    from bayesunlearn.io import settings
    from bayesunlearn.io.progress import progress

    params = settings.load()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [case(network, n, Path(tmp), params.train.adam_steps, params.train.learning_rate)
                for network, n in progress(cases, desc="scale_out cases", unit="case")]
    return {"cases": rows, "targets": targets(rows), "plan_seconds": plan(rows)}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small cases only (100k × 20k, 1M × 5k): a smoke run")
    args = parser.parse_args()
    chosen = (("100k", 20_000), ("1M", 5_000)) if args.quick else CASES
    print(json.dumps(run(chosen), indent=2))


# --- the docs' generated blocks (bench/docs.py), from the committed docs/bench.json -----------------------
def _measured(path: Path):
    from bench.summary import BENCH

    bench = json.loads((path or BENCH).read_text()) if (path or BENCH).exists() else {}
    return bench.get("scale_out"), bench.get("structure_quality")


def readme_block(path: Path | None = None) -> str:
    """One row per structure at the largest measured network: memory, forgetting, fit on 1 and 2 workers."""
    from bench.summary import _fmt, _table

    scale_out, _ = _measured(path)
    if not scale_out:
        return "(not measured yet: run `make bench`)"
    rows = []
    for r in scale_out["cases"]:
        if r["n_params"] < 1_000_000:
            continue
        for s in STRUCTURES:
            w = r[s]
            rows.append({"structure": f"`{s}`", "parameters": f"{r['n_params']:,}", "records": f"{r['n']:,}",
                         "fit, 1 → 2 workers (s)": f"{w['fit_seconds']['1']:.1f} → {w['fit_seconds']['2']:.1f}",
                         "forget 1,000 (s)": f"{w['unlearn_seconds']['1000']:.2f}",
                         "vs cold retrain": f"{_fmt(w['speedup']['1000'])}×",
                         "peak MB / process": f"{max(w['worker_peak_mb'], w['unlearn_peak_mb']):,.0f}"})
    largest = max(scale_out["cases"], key=lambda r: r["n"] * r["n_params"] if r["n"] >= 1_000_000 else 0)
    plan = scale_out["plan_seconds"][_plan_key(largest, "kfac")]
    return (_table(rows) + f"\n\nThe `kfac` fit on {largest['n']:,} records ({largest['n_params']:,} parameters) "
            f"takes {plan['1']:.0f} s on 1 worker and, extrapolated from the measured shard and reduce times, "
            f"{plan['8']:.0f} s on 8 and {plan['16']:.0f} s on 16.")


def docs_block(path: Path | None = None) -> str:
    """Every case, the targets, the plan to N workers, and the quality of each structure at 10k parameters."""
    from bench.summary import _fmt, _table

    scale_out, quality = _measured(path)
    if not scale_out:
        return "(not measured yet: run `make bench`)"
    rows = []
    for r in scale_out["cases"]:
        for s in STRUCTURES:
            w = r[s]
            rows.append({"parameters": f"{r['n_params']:,}", "records": f"{r['n']:,}", "structure": s,
                         "fit 1 worker (s)": w["fit_seconds"]["1"], "fit 2 workers (s)": w["fit_seconds"]["2"],
                         "2 workers ×": w["fit_speedup_2_workers"],
                         "forget 50 (s)": w["unlearn_seconds"]["50"], "forget 1,000 (s)": w["unlearn_seconds"]["1000"],
                         "cold retrain (s)": _fmt(w["retrain_seconds"]), "speedup (1,000)": _fmt(w["speedup"]["1000"]),
                         "peak MB (worker / forgetting)": f"{w['worker_peak_mb']:,.0f} / {w['unlearn_peak_mb']:,.0f}"})
    t = scale_out["targets"]
    lines = [_table(rows), "",
             f"Targets: forgetting at least 1,000× faster than a cold retrain at n ≥ 50k: smallest speedup "
             f"{_fmt(t['min_speedup_n_50k'])}× ({_met(t['meets']['min_speedup_n_50k'])}); at most 4 GB per process "
             f"at 1M parameters: largest peak {t['max_peak_mb_1m_params']:,.0f} MB "
             f"({_met(t['meets']['max_peak_mb_1m_params'])}); the 2-worker fit at least 1.6× faster at n = 1M: "
             f"{t['min_fit_speedup_2_workers_n_1m']:.2f}× ({_met(t['meets']['min_fit_speedup_2_workers_n_1m'])}).",
             "", "**The plan to N workers** (seconds of the fit; fit(N) ≈ shard work / N + reduce + overhead, "
             "each measured on 1 worker, for `laplace.shards` ≥ N; beside it the measured 2-worker fit):", "",
             _table(_plan_rows(scale_out), ".1f")]
    if quality:
        lines += ["", *_quality_lines(quality)]
    return "\n".join(lines)


def _quality_lines(quality: dict) -> list[str]:
    """The structure_quality table (bench/structures.py): every row of both deletions, then its targets."""
    from bench.structures import variants
    from bench.summary import _table

    rows = [_quality_row(f"{mode} ({quality[mode]['n_forgotten']} records)", name, q)
            for mode in ("random", "segment") for name in variants() if (q := quality[mode].get(name))]
    lines = [f"**Quality at {quality['n_params']:,} parameters** ({quality['n']:,} records, "
             f"{quality['retrains']} retrains per structure; gain below 1 = forgetting helped, gain over the full "
             "GGN's above 1 = worse than the full GGN; CG to a relative residual of "
             f"{quality.get('cg_tolerance', 0):g}; speedup = a retrain's measured time (MAP fit and the "
             "structure's fit on the retained records) over the forgetting's, in the same run):", "", _table(rows)]
    t = quality.get("targets")
    if t:
        best, newton, sub = (t["best_scalable_within_1_5x_full_ggn_10k"], t["best_newton_step_within_1_5x_full_ggn_10k"],
                             t["subnetwork_at_least_last_layer_10k"])

        def ratios(j: dict) -> str:
            return " and ".join(f"{j[m]['gain_over_full_ggn']:.3g}× on {m}" for m in ("random", "segment"))

        lines += ["", f"Targets: the best scalable row within {best['within']}× the full GGN's gain on both deletions: "
                  f"`{best['row']}`, {ratios(best)} ({_met(best['met'])}); among Newton steps alone (no pass over "
                  f"the retained records): `{newton['row']}`, {ratios(newton)} ({_met(newton['met'])}); the "
                  f"subnetwork's Newton step at least as good as the last layer's on both: gain "
                  f"{sub['random']['subnetwork']:.3g} against {sub['random']['last_layer']:.3g} (random), "
                  f"{sub['segment']['subnetwork']:.3g} against {sub['segment']['last_layer']:.3g} (segment) "
                  f"({_met(sub['met'])})."]
    return lines


def _quality_row(deletion: str, name: str, q: dict) -> dict:
    from bench.summary import _fmt

    step = {"newton": "Newton", "none": "CG", "structure": "CG, preconditioned"}[
        q.get("cg_preconditioner", q.get("mean_update", "newton"))]
    passes = q.get("cg_passes", "—")
    return {"deletion": deletion, "structure": q.get("structure", name), "step": step, "gain": q["gain"],
            "gain over full GGN's": q["gain_over_full_ggn"], "indistinguishability": q["indistinguishability"],
            "CG passes": passes if q.get("cg_converged", True) else f"{passes} (not converged)",
            "forget (s)": q["unlearn_seconds"], "speedup": f"{_fmt(q['speedup'])}×" if "speedup" in q else "—",
            "test RMSE (unlearned / retrained)": f"{q['test_rmse_unlearned']:.3g} / {q['test_rmse_retrained']:.3g}"}


def _plan_rows(scale_out: dict) -> list[dict]:
    rows = []
    for r in scale_out["cases"]:
        for s in STRUCTURES:
            plan = scale_out["plan_seconds"][_plan_key(r, s)]
            rows.append({"case": _plan_key(r, s), **{f"N = {n}": plan[n] for n in sorted(plan, key=int)},
                         "measured, 2 workers": r[s]["fit_seconds"]["2"]})
    return rows


def _met(value: bool | None) -> str:
    return "not measured" if value is None else ("met" if value else "**not met**")
