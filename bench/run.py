"""`make bench`: unlearning vs retraining, per method, for random and cluster deletion.

Prints one JSON object and saves it, with predictive plots, under bench/results/:
- "random" / "cluster": the default method (GGN Laplace, Newton step), with the
  retrain noise floor (`retrain.seeds` retrains from scratch);
- "methods": {NAME: {"random": {...}, "cluster": {...}}} for every configured method;
- "finetune": {"random"|"cluster": {"same_time"|"ten_times": {...}}}: the baseline a
  practitioner tries first, Adam from θ* on the retained records within the default
  method's unlearning time and ten times it (bench/finetune.py);
- "intake_latency": request file in the inbox → new served posterior (bench/latency.py).
- "exposure_window": with `audit.after_intake` on, request in the inbox → fast path served →
  audit verdict → refit served, on the default data; with it off, the bound set by
  `schedule.audit_cron` (bench/window.py).
- "scale": unlearning vs a cold retrain per method for networks of ~150, 2.5k
  and 10k parameters × n = 500, 5k, 50k, a fixed 50 records forgotten, with
  peak memory per case (bench/scale.py; plot bench/results/scale.png);
- "compute": XLA vs not, vectorised vs looped Jacobians, float32 vs float64,
  batched SYRK vs one-shot GGN, Woodbury vs refactorisation (bench/compute.py);
- "dvc_noop_seconds", "dvc_incremental": DVC timings in temporary clones
  (bench/dvc_timing.py);
- "real": {SOURCE: {"protocol": {...}, "random": {...}, "segment": {...}}}: the standard
  UCI regression protocol (20 random 90/10 splits, 50 hidden units) on the packaged
  concrete data: test RMSE and log-likelihood of the MAP, GGN-Laplace and VI
  predictives (bench/uci.py); and per method, the real-data study's random and
  segment deletions (bench/real.py, from study/real/);
- "gate_confusion": the gate's decisions on every event of the real-data study
  against the audit's truth (study/real/confusion.json);
- "gate_missed": the study's fast-path events the audit finds harmful, rebuilt and
  polished to tell a step that fell short from retrains in another optimum, or a local
  run left unfinished (bench/missed.py);
- "gate_prior": the production method on `default`'s study events at other prior
  precisions: evidence, test fit and the gate against the audit (bench/prior.py);
- "classifier_forgetting": on the classification tables' random deletions, the production method, the
  same refined to a mode of the retained objective (`refine_tolerance`) and fine-tuning in the same wall
  time, against the retrains (bench/classifiers.py);
- "membership_events": the production method on every study event of the classification tables, what the
  per-record membership test adds to the harm criterion; "study_cost": one measured retrain per study table and
  a rerun's retrains extrapolated from it (bench/membership.py);
- "vi_forgetting": every VI method on the regression tables' random deletions of at most 10 % against measured
  retrains, with issue 27's VI targets, which also join "targets" (bench/vi_forgetting.py);
- "scale_out": the KFAC and subnetwork posteriors at ~100k and ~1M parameters and
  n up to 1M, their curvature fitted on 1 and 2 Dask workers, unlearning 50 and
  1,000 records against a cold retrain, peak memory per process (bench/scale_out.py);
- "experiment_tables": per shipped table, the docs' `dvc exp run headline -S <preset>` from a fresh
  workspace: wall time, stages run, the served method, the gate's verdict, convergence and the test
  figures beside the UCI protocol's (bench/experiment_tables.py, presets in bench/presets.py);
- "structure_quality": each structure's forgetting (Newton step, and the Hessian-free CG step) against
  the full GGN's on the 10k-parameter network, random and segment deletions, with its targets, which
  also join "targets" (bench/structures.py);
- "structure_quality_100k": kfac, ekfac and the last layer (Newton and CG steps) at ~100k parameters on a
  subsample of diamonds, random and segment deletions against retrains that are run (a reduced, stated
  training budget), with its targets, which also join "targets" (bench/structures_100k.py);
- "peer": each structure's curvature fit (KFAC, EK-FAC, last layer at 97.5k parameters, the full GGN at 1.2k)
  beside laplace-torch's on the same network and data, with the ratio, when the optional extra `peer` is
  installed (its target joins "targets"); else the project's times alone (bench/peer.py).
`random` forgets 10 % of the training records at random, `cluster` every record
of the right input cluster. Timings are medians of warm repeats in this one
process, so ratios are fair on a noisy machine.

Parts: methods (the keys model/random/cluster/methods), latency, window, scale, compute,
dvc, real, experiments (experiment_tables), scale_out, peer. `--only scale compute` runs just those; a quick scale run:
`python -m bench.run --only scale --sizes 150 2.5k --n-train 500 5000`.
The full run takes about 30 minutes on 2 cores, most of it the 10k × 50k scale cell,
plus the scale-out part (structure_quality's retrains alone take about 40 minutes, structure_quality_100k's
about 60 on a loaded machine) and, once the
study's results exist, the real part's rebuilt
events (gate_missed, gate_prior), its membership events (the classification tables' 30 events with four
retrains each: about 20 minutes on busy cores) and the study's cost (one retrain per real table, minutes on a
regression table: docs/bench.json "study_cost" has each), and the experiments part, one fresh workspace per
shipped table (docs/bench.json "experiment_tables" has each one's seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN may reorder float sums

DEFAULT_METHOD = "ggn_newton"
HEADLINE = ["unlearn_seconds", "retrain_seconds", "speedup", "pred_kl_unlearned_retrained",
            "pred_kl_original_retrained", "pred_kl_retrain_floor", "kl_unlearned_retrained",
            "kl_original_retrained", "indistinguishability", "gain"]


def forget_masks(x: np.ndarray, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """`random`: a random fraction of the training records; `cluster`: every record right of the gap."""
    from bayesunlearn.experiments.study import forget_mask

    return {"random": forget_mask(x, "random", fraction, seed), "cluster": x[:, 0] > 0}


PARTS = ("methods", "latency", "window", "scale", "compute", "dvc", "real", "experiments", "scale_out", "peer")


def main(argv: list[str] | None = None) -> None:
    from bench import scale

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    parser.add_argument("--params", default="params.yaml", help="parameters of data, model, training, methods")
    parser.add_argument("--fraction", type=float, default=0.1, help="share forgotten in the random case")
    parser.add_argument("--repeats", type=int, default=3, help="warm timing repeats (median)")
    parser.add_argument("--methods", nargs="*", help="only these methods (default: all configured)")
    parser.add_argument("--out", default="bench/results", help="folder for bench.json and plots")
    parser.add_argument("--no-latency", action="store_true", help="skip the intake-latency measurement")
    parser.add_argument("--sizes", nargs="+", default=list(scale.SIZES), choices=list(scale.SIZES),
                        help="scale: network sizes (parameters)")
    parser.add_argument("--n-train", nargs="+", type=int, default=list(scale.N_TRAIN), help="scale: training set sizes")
    parser.add_argument("--scale-methods", nargs="+", default=list(scale.METHODS), help="scale: methods")
    parser.add_argument("--forget", type=int, default=50, help="scale: records forgotten in every case")
    parser.add_argument("--steps", type=int, default=100, help="scale: Adam steps timed, scaled to train.adam_steps")
    parser.add_argument("--uci-splits", type=int, default=20, help="real: random 90/10 splits of the UCI protocol")
    parser.add_argument("--uci-workers", type=int, default=2, help="real: processes running the UCI splits")
    parser.add_argument("--quick-compute", action="store_true", help="compute: skip the 10k-parameter downdate")
    args = parser.parse_args(argv)
    from bayesunlearn.io.progress import phase, progress

    parts = [p for p in PARTS if p in args.only and not (p == "latency" and args.no_latency)]
    out = Path(args.out)
    report: dict = {}
    bar = progress(parts, desc="bench", unit="part")  # on stderr: stdout carries the JSON alone
    for part in bar:
        phase(bar, part)
        run_part(part, args, report, out)
    if "scale" in parts:
        report["targets"] = scale.targets(report["scale"], report.get("dvc_noop_seconds"))
    for key in ("structure_quality", "structure_quality_100k", "peer", "vi_forgetting"):  # issues 26 and 27
        if key in report:
            report.setdefault("targets", {}).update(report[key].get("targets", {}))
    from bayesunlearn.io import atomic

    atomic.write_json(out / "bench.json", report)
    if set(parts) == set(PARTS):  # a full run: the numbers docs/benchmark.md quotes
        atomic.write_json(Path("docs/bench.json"), report)
    print(json.dumps(report, indent=2))


def run_part(part: str, args: argparse.Namespace, report: dict, out: Path) -> None:
    """One part of the benchmark, its keys added to `report`."""
    from bench import scale

    if part == "methods":
        report.update(methods_report(args))
    if part == "latency":
        import contextlib

        from bench.latency import measure

        with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON alone
            report["intake_latency"] = measure()
    if part == "window":
        import contextlib

        from bench import window

        with contextlib.redirect_stdout(sys.stderr):
            report["exposure_window"] = window.measure()
    if part == "scale":
        report.update(scale.run_scale(args.sizes, args.n_train, args.scale_methods, args.forget, args.steps,
                                      args.repeats))
        scale.plot_scale(report["scale"], out / "scale.png")
    if part == "compute":
        cmd = [sys.executable, "-m", "bench.compute"] + (["--quick"] if args.quick_compute else [])
        report["compute"] = json.loads(subprocess.run(cmd, capture_output=False, stdout=subprocess.PIPE,
                                                      text=True, check=True).stdout)
    if part == "dvc":
        from bench import dvc_timing

        report.update(dvc_timing.measure(args.repeats))
    if part == "real":
        real_part(args, report)
    if part == "experiments":  # after `real`: its UCI protocol figures go beside the tables'
        from bench import experiment_tables

        report["experiment_tables"] = experiment_tables.measure(list(experiment_tables.PRESETS), report)
    if part == "peer":  # its own process: torch beside TensorFlow's thread pools would skew both
        report["peer"] = json.loads(subprocess.run([sys.executable, "-m", "bench.peer"], stdout=subprocess.PIPE,
                                                   text=True, check=True).stdout)
    if part == "scale_out":  # its own process: Dask's worker processes start from a module, not from here
        for key, module in (("scale_out", "bench.scale_out"), ("structure_quality", "bench.structures"),
                            ("structure_quality_100k", "bench.structures_100k")):
            report[key] = json.loads(subprocess.run([sys.executable, "-m", module], stdout=subprocess.PIPE, text=True,
                                                    check=True).stdout)


def real_part(args: argparse.Namespace, report: dict) -> None:
    from bayesunlearn.io import settings as settings_module
    from bench import real, uci

    params = settings_module.load(args.params)
    study = real.bench_keys() if real.available() else {}  # `dvc repro study/dvc.yaml:real_study`'s results
    if not study:
        print(f"bench: {real.ROOT} has no results; run `make study` for the real-data keys", file=sys.stderr)
    report["real"] = study.get("real", {})
    for source in uci.SOURCES:
        report["real"].setdefault(source, {})["protocol"] = uci.protocol(source, args.uci_splits, params,
                                                                         args.uci_workers)
    if study:
        from bench import missed, prior

        report["gate_confusion"] = study["gate_confusion"]
        report["gate_missed"] = missed.examine(params)
        report["gate_prior"] = prior.examine(params)
    from bench import classifiers, membership, vi_forgetting

    vi = report[vi_forgetting.KEY] = vi_forgetting.measure(None, None, 2, args.params)
    vi["targets"] = vi_forgetting.targets(vi, vi_forgetting.regression_tables(params),
                                          report["real"][uci.SOURCES[0]]["protocol"])
    report[classifiers.KEY] = classifiers.measure(params_path=args.params)
    report[membership.KEY] = membership.measure(params_path=args.params)
    report[membership.COST_KEY] = membership.study_cost(params_path=args.params)


def methods_report(args: argparse.Namespace) -> dict:
    """Every configured method on the default data, random and cluster deletion (the original benchmark)."""
    from bayesunlearn.model.tf import tf

    tf.config.experimental.enable_op_determinism()
    from bayesunlearn.io.progress import progress
    from bayesunlearn.io import datasets
    from bayesunlearn.io import settings as settings_module
    from bayesunlearn.experiments.evaluation import compare, time_unlearning_vs_retraining
    from bayesunlearn.io.datasets import Splits
    from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
    from bayesunlearn.unlearning.methods import apply
    from bayesunlearn.model.likelihood import build_model
    from bayesunlearn.experiments.plots import predictive_table, save_predictive_png
    from bayesunlearn.model.training import fit_map
    from bench import finetune

    params = settings_module.load(args.params)
    p = params.prepare
    frame, origin = datasets.load_source(p)  # the prepare stage's own loader: same data as the pipeline
    train, test, _ = datasets.prepare(frame, p.test_fraction, p.seed, origin, p.target_kind, datasets.class_labels(p))
    x, y = datasets.arrays(train)
    x_test, y_test = datasets.arrays(test)
    model = build_model(params.model, x.shape[1], datasets.n_classes(p))
    config, seed = params.train, params.train.seed
    settings = FitSettings.of(params)
    methods = params.chosen_methods(args.methods or [])
    kinds = sorted({m.posterior for m in methods.values()})
    n_seeds = params.retrain.seeds

    theta, _ = fit_map(model, x, y, model.spec.init(seed), config)
    originals = {k: fit_posterior(k, model, theta, x, y, settings) for k in kinds}
    report: dict = {"model": {"n_params": model.spec.n_params, "n_train": len(x), "hidden": list(model.spec.hidden)},
                    "methods": {}}
    for case, mask in forget_masks(x, args.fraction, seed).items():
        splits = Splits(x[~mask], y[~mask], x[mask], y[mask], x_test, y_test)
        maps = [fit_map(model, splits.x_retained, splits.y_retained, model.spec.init(seed + k), config)[0]
                for k in progress(range(n_seeds), desc=f"{case}: retrain MAPs", unit="seed")]
        for name, method in progress(methods.items(), desc=f"{case}: methods", unit="method", total=len(methods)):
            retrains = [fit_posterior(method.posterior, model, t, splits.x_retained, splits.y_retained, settings)
                        for t in maps]
            original = originals[method.posterior]
            unlearned, status = apply(method, original, splits.x_forgotten, splits.y_forgotten,
                                      (splits.x_retained, splits.y_retained))
            result = {**compare(original, unlearned or original, retrains, splits),
                      **time_unlearning_vs_retraining(method, original, splits, seed, config, settings, args.repeats),
                      "failed": int(unlearned is None), "n_forgotten": int(mask.sum())}
            report["methods"].setdefault(name, {})[case] = {k: result[k] for k in HEADLINE + ["failed", "n_forgotten"]}
            if name == DEFAULT_METHOD:
                report[case] = {**report["methods"][name][case], "min_eig_precision": status.get("min_eig_precision")}
                report.setdefault("finetune", {})[case] = finetune.baseline(original, retrains, splits, config,
                                                                            result["unlearn_seconds"])
                table = predictive_table({"original": original, "unlearned": unlearned, "retrained": retrains[0]},
                                         splits, 200)
                save_predictive_png(Path(args.out) / f"predictive_{case}.png", table, splits,
                                    f"{name}, {case} deletion: {int(mask.sum())} of {len(x)} records forgotten")
    return report


if __name__ == "__main__":
    main()
