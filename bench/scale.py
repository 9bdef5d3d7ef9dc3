"""Scale benchmark: unlearning vs a cold retrain, per method, network size and n.

Every (network, n) cell runs in a fresh subprocess (`python -m bench.scale
--cell SIZE N`) so that its peak memory is its own: before each method the
process's peak RSS is reset (/proc/self/clear_refs) and VmHWM read after it.
`baseline_mb` is the RSS of that process idle (TensorFlow imported, data
loaded), so `peak_mb − baseline_mb` is what the method added.

Data: the two-cluster 1-D regression data (`datasets.two_clusters`, default
`prepare` settings), n records, standardised; a FIXED number of records is
forgotten (default 50), chosen at random, so unlearning should cost the same at
every n. Per method:
- unlearn_seconds: the method's operator on the forgotten records (GGN: the
  Woodbury downdate in place on Σ: above 2,000 parameters a full-GGN posterior
  is held as Σ only, see bayesunlearn/posterior.py), warm (traced once before);
- retrain_seconds: what the unlearning replaces, a cold retrain on the
  retained records = the pipeline's full-batch Adam (`train.adam_steps`) from a
  fresh seed + fitting the same posterior kind. Adam runs predicted to take
  under FULL_RUN_SECONDS are timed in full; longer ones over `--steps` steps
  and scaled to the configured count (each step is the same XLA-compiled
  computation; `scale_extrapolation_check` compares both on one cell). VI's
  ELBO steps are scaled the same way. The
  Levenberg–Marquardt polish is left out: the retrain is a lower bound and
  so is the speedup. The posterior fit itself is measured.
The original MAP is only `--steps` Adam steps: costs do not depend on how well
it fits (a poorly fitted VI posterior can make the EUBO fail: reported).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

SIZES = {"150": (50,), "2.5k": (48, 48), "10k": (99, 99)}  # 151, 2,497 and 10,198 parameters
N_TRAIN = (500, 5000, 50000)
METHODS = ("ggn_newton", "diag_ggn_newton", "last_layer", "vi_mf_eubo", "hessian_clip")
HESSIAN_MAX_PARAMS = 3000   # dense exact Hessian: 6.9 GB and ~100 s eigendecomposition at 10k (docs/design.md)
HESSIAN_MAX_WORK = 2e11     # n·P²: skip above ~2.5k params × 30k records (minutes per fit on 2 cores)
HESSIAN_PFOR_MAX_NP = 2e6   # n·P on the vectorised (pfor) Hessian path: 151 params × 50k records passed 12 GB
FULL_RUN_SECONDS = 30      # retrain Adam runs predicted shorter than this are timed in full, not scaled
IN_PLACE_MIN_PARAMS = 2000  # above this the GGN downdate overwrites the posterior: timed once, no copies


def memory_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS (Linux ≥ 4.0)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def cell_data(n: int, n_forget: int, seed: int):
    """n standardised two-cluster records and a random forgotten mask of n_forget."""
    import numpy as np

    from bayesunlearn.io import datasets

    frame = datasets.two_clusters(n, seed, 0.1, [[-2.0, -0.5], [0.5, 2.0]])
    x, y = frame[["x"]].to_numpy(), frame["y"].to_numpy()
    x, y = (x - x.mean(0)) / x.std(0), (y - y.mean()) / y.std()
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[:n_forget]] = True
    return x, y, mask


def _setup(size: str, n: int, n_forget: int):
    """TensorFlow, parameters, data and model of one cell (each process builds its own)."""
    from bayesunlearn.model.tf import tf

    from bayesunlearn.io import settings
    from bench import regression_model

    tf.config.experimental.enable_op_determinism()
    params = settings.load()
    x, y, mask = cell_data(n, n_forget, 0)
    return params, x, y, mask, regression_model(params.model, SIZES[size], 1)


def time_adam(adam, steps: int, pipeline_steps: int) -> tuple[int, float]:
    """(k, seconds of k Adam steps): all `pipeline_steps` when that takes under FULL_RUN_SECONDS
    (short runs of cheap steps time badly on a loaded machine), else `steps` steps."""
    adam(1)  # trace and compile for this shape
    seconds, _ = timed(lambda: adam(steps))
    if seconds / steps * pipeline_steps > FULL_RUN_SECONDS:
        return steps, seconds
    seconds, _ = timed(lambda: adam(pipeline_steps))
    return pipeline_steps, seconds


def prepare_cell(size: str, n: int, n_forget: int, steps: int, thetas: Path) -> dict:
    """Time the retrain's Adam loop; save the original and a retrained MAP (`steps` steps each) to `thetas`."""
    import numpy as np

    from bayesunlearn.model.autodiff import as_tensor
    from bayesunlearn.model.training import run_adam

    params, x, y, mask, model = _setup(size, n, n_forget)
    pipeline_steps, lr = params.train.adam_steps, params.train.learning_rate

    def adam(xs, ys, seed, k):
        return run_adam(model, as_tensor(xs), as_tensor(ys), as_tensor(model.spec.init(seed)), k, lr).numpy()

    k, seconds = time_adam(lambda k: adam(x[~mask], y[~mask], 1, k), steps, pipeline_steps)
    # the "original" MAP: costs, not accuracy, are measured here; and a retrained MAP for the retrain's posterior
    np.savez(thetas, theta=adam(x, y, 0, k), theta_r=adam(x[~mask], y[~mask], 1, k))
    return {"adam_steps_timed": k, "adam_steps_pipeline": pipeline_steps,
            "retrain_adam_seconds": seconds / k * pipeline_steps}


def run_case(size: str, n: int, name: str, n_forget: int, repeats: int, thetas: Path) -> dict:
    """One method at one (network size, n), in a process of its own: times and peak memory."""
    import numpy as np

    from bayesunlearn.model.network import outputs_and_jacobians
    from bayesunlearn.posteriors.fit import FitSettings, fit_posterior
    from bayesunlearn.kinds import KINDS
    from bayesunlearn.unlearning.methods import apply
    from bayesunlearn.unlearning.divide import forget, refine

    params, x, y, mask, model = _setup(size, n, n_forget)
    x_r, y_r, x_f, y_f = x[~mask], y[~mask], x[mask], y[mask]
    method, p = params.method(name), model.spec.n_params
    saved = np.load(thetas)
    theta, theta_r = saved["theta"], saved["theta_r"]
    vi_steps = params.vi.steps
    # ELBO steps timed, scaled to vi.steps (each the same compiled step): all of them for small cells
    vi_k = max(20, min(vi_steps, int(4e9 / (n * p * 8))))
    settings = FitSettings(vi=params.vi.model_copy(update={"steps": vi_k}))
    row = {"method": name, "posterior": method.posterior, "network": size, "hidden": list(SIZES[size]),
           "n_params": p, "n_train": n, "n_forget": n_forget}
    if method.posterior == "full_hessian":
        reason = _hessian_skip_reason(n, p)
        if reason:
            return {**row, "skipped": reason}
    row["baseline_mb"] = round(memory_mb("VmRSS"), 1)  # idle: TensorFlow imported, data loaded
    reset_peak()
    fit_seconds, original = timed(lambda: fit_posterior(method.posterior, model, theta, x, y, settings))
    outputs_and_jacobians(model.spec, theta, x_f)  # trace the forgotten set's shape
    # in place only where the Woodbury downdate applies; every other operator is warmed up and repeated
    kind = KINDS[method.posterior]
    woodbury = kind.curvature == "ggn" and kind.storage == "dense" and kind.covers == "all"
    in_place = method.operator == "divide" and woodbury and p > IN_PLACE_MIN_PARAMS
    if method.operator == "divide":
        def run():
            unlearned = forget(original if in_place else _copy(original), x_f, y_f, method, in_place=in_place)[0]
            return refine(unlearned, x_r, y_r, method.refine)[0] if method.refine else unlearned
    else:
        def run():
            return apply(method, original, x_f, y_f)[0]
    fit_peak = memory_mb("VmHWM")
    if not in_place:
        run()  # warm-up on a copy
    reset_peak()
    row["unlearn_rss_before_mb"] = round(memory_mb("VmRSS"), 1)  # holds the original posterior
    # in place: timed once (a second in-place downdate would remove the records twice)
    results = [timed(run) for _ in range(1 if in_place else repeats)]
    row.update({"unlearn_seconds": float(np.median([t for t, _ in results])), "unlearn_repeats": len(results),
                "unlearn_failed": results[-1][1] is None, "unlearn_peak_mb": round(memory_mb("VmHWM"), 1),
                "original_fit_seconds": fit_seconds})
    del original, run, results
    if fit_seconds < 5 or kind.family == "vi":  # trace/compile for the retained shape first
        fit_posterior(method.posterior, model, theta_r, x_r, y_r, FitSettings(vi=params.vi.model_copy(update={"steps": 1})))
    reset_peak()
    post_seconds, _ = timed(lambda: fit_posterior(method.posterior, model, theta_r, x_r, y_r, settings))
    if kind.family == "vi":  # scale the ELBO loop from vi_k to the configured steps
        start_seconds, _ = timed(lambda: fit_posterior(kind.start, model, theta_r, x_r, y_r, settings))
        post_seconds = start_seconds + (post_seconds - start_seconds) / vi_k * vi_steps
    peak = max(fit_peak, row["unlearn_peak_mb"], memory_mb("VmHWM"))
    return {**row, "retrain_posterior_seconds": post_seconds, "peak_mb": round(peak, 1),
            "peak_increment_mb": round(peak - row["baseline_mb"], 1), "load_average": os.getloadavg()[0]}


def _hessian_skip_reason(n: int, p: int) -> str:
    """Why the dense exact Hessian is not run for this cell ("" when it is)."""
    from bayesunlearn.model.autodiff import PFOR_MAX_PARAMS

    if p > HESSIAN_MAX_PARAMS:
        return (f"dense exact Hessian at {p} params: ~6.9 GB through TF's jacobian and a ~100 s dense "
                f"eigendecomposition at 10k (docs/design.md); memory grows with P², time with n·P²")
    if p <= PFOR_MAX_PARAMS and n * p > HESSIAN_PFOR_MAX_NP:
        return (f"vectorised Hessian of {n} records × {p} params: memory grows with n·P (a 151-param, "
                f"50k-record run passed 12 GB and was stopped)")
    if n * p * p > HESSIAN_MAX_WORK:
        return f"n·P² = {n * p * p:.2g}: several minutes per fit on 2 cores (budget {HESSIAN_MAX_WORK:.0e})"
    return ""


def _copy(posterior):
    return posterior.with_updates(matrix=posterior.matrix.copy())


def extrapolation_check(size: str, n: int, steps: int) -> dict:
    """Adam time of a full pipeline-length run vs the per-step extrapolation from `steps` steps."""
    from bayesunlearn.model.autodiff import as_tensor
    from bayesunlearn.model.training import run_adam

    params, x, y, _, model = _setup(size, n, 0)
    full, lr = params.train.adam_steps, params.train.learning_rate
    args = (model, as_tensor(x), as_tensor(y), as_tensor(model.spec.init(1)))
    run_adam(*args, 1, lr)
    short, _ = timed(lambda: run_adam(*args, steps, lr).numpy())
    measured, _ = timed(lambda: run_adam(*args, full, lr).numpy())
    return {"network": size, "n_train": n, "steps_timed": steps, "steps_full": full,
            "extrapolated_seconds": short / steps * full, "measured_seconds": measured}


def _json_of(cmd: list[str]) -> dict | list:
    out = subprocess.run([sys.executable, "-m", "bench.scale", *cmd], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout)


def run_scale(sizes: list[str], n_trains: list[int], methods: list[str], n_forget: int, steps: int,
              repeats: int) -> dict:
    """Each cell's MAPs and Adam timing in one subprocess, then each method in its own."""
    import tempfile

    from bayesunlearn.io.progress import progress

    rows = []
    cases = [(s, n, m) for s in sizes for n in n_trains for m in [None, *methods]]
    with tempfile.TemporaryDirectory() as tmp:
        for size, n, method in progress(cases, desc="scale cases", unit="case"):
            thetas = str(Path(tmp) / f"{size}-{n}.npz")
            common = ["--forget", str(n_forget), "--thetas", thetas]
            if method is None:
                cell = _json_of(["--cell", size, str(n), "--steps", str(steps), *common])
                continue
            row = _json_of(["--case", size, str(n), method, "--repeats", str(repeats), *common])
            row = {"method": method, "network": size, "n_train": n, **row, **cell}
            if "unlearn_seconds" in row and "retrain_adam_seconds" in row:
                row["retrain_seconds"] = row["retrain_adam_seconds"] + row["retrain_posterior_seconds"]
                row["speedup"] = row["retrain_seconds"] / row["unlearn_seconds"]
            rows.append(row)
    check_cell = ("2.5k", 5000) if "2.5k" in sizes and 5000 in n_trains else (sizes[0], n_trains[0])
    check = _json_of(["--check", check_cell[0], str(check_cell[1]), "--steps", str(steps)])
    return {"scale": rows, "scale_extrapolation_check": check}


def plot_scale(rows: list[dict], path: Path) -> None:
    """Speedup, unlearning and retraining seconds vs n: colour = method, line style = network size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "speedup" in r]
    methods = sorted({r["method"] for r in done})
    sizes = sorted({(r["n_params"], r["network"]) for r in done})
    styles = dict(zip([s for _, s in sizes], ["-", "--", ":"], strict=False))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    panels = (("speedup", "speedup (retrain / unlearn)"), ("unlearn_seconds", "unlearning [s]"),
              ("retrain_seconds", "cold retrain [s]"))
    for colour, method in enumerate(methods):
        for _, size in sizes:
            pts = sorted((r["n_train"], r) for r in done if r["method"] == method and r["network"] == size)
            if not pts:
                continue
            for ax, (key, _) in zip(axes, panels, strict=True):
                ax.plot([n for n, _ in pts], [r[key] for _, r in pts], styles.get(size, "-"), marker="o",
                        color=f"C{colour}", label=f"{method}, {size} params")
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.set(xscale="log", yscale="log", xlabel="training records n", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].axhline(300, color="grey", lw=0.8)
    axes[0].axhline(10, color="grey", lw=0.8, ls="--")
    axes[2].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"forgetting {done[0]['n_forget'] if done else '?'} records: unlearning vs a cold retrain "
                 f"(lines at 300× and 10×: the GGN and VI targets)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def targets(rows: list[dict], dvc_noop_seconds: float | None) -> dict:
    """Issue 6's targets, each with the numbers it was judged on."""
    done = [r for r in rows if "speedup" in r]
    ggn = [r for r in done if r["method"] == "ggn_newton"]
    ggn_big = [(r["network"], r["n_train"], round(r["speedup"], 1)) for r in ggn if r["n_train"] >= 5000]
    growth = {}
    for size in {r["network"] for r in ggn}:
        curve = [r["speedup"] for r in sorted(ggn, key=lambda r: r["n_train"]) if r["network"] == size]
        growth[size] = all(b > a for a, b in zip(curve, curve[1:], strict=False))
    vi = [(r["method"], r["network"], r["n_train"], round(r["speedup"], 1)) for r in done
          if r["posterior"].startswith("vi_")]
    big = [(r["method"], round(r["peak_mb"]), round(r["peak_increment_mb"])) for r in done
           if r["n_params"] > 5000 and r["posterior"] != "full_hessian"]
    out = {
        "ggn_300x_for_n_ge_5k": {"met": bool(ggn_big) and all(s >= 300 for *_, s in ggn_big), "cases": ggn_big},
        "ggn_speedup_grows_with_n": {"met": bool(growth) and all(growth.values()), "per_size": growth},
        "vi_10x": {"met": bool(vi) and all(s >= 10 for *_, s in vi), "cases": vi},
        "peak_2gb_at_10k_params": {"met_process_peak": bool(big) and all(p <= 2048 for _, p, _ in big),
                                   "met_increment_over_idle_tf": bool(big) and all(i <= 2048 for *_, i in big),
                                   "cases_method_peak_increment_mb": big},
    }
    if dvc_noop_seconds is not None:
        out["dvc_noop_2s"] = {"met": dvc_noop_seconds <= 2.0, "seconds": dvc_noop_seconds}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", nargs=2, metavar=("SIZE", "N"), help="internal: MAPs and Adam timing of a cell")
    parser.add_argument("--case", nargs=3, metavar=("SIZE", "N", "METHOD"), help="internal: one method of a cell")
    parser.add_argument("--check", nargs=2, metavar=("SIZE", "N"), help="only the Adam extrapolation check")
    parser.add_argument("--thetas", type=Path, help="internal: where --cell saves the MAPs that --case reads")
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--n-train", nargs="*", type=int, default=list(N_TRAIN))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--forget", type=int, default=50, help="records forgotten in every cell")
    parser.add_argument("--steps", type=int, default=100, help="Adam steps timed (scaled to train.adam_steps)")
    parser.add_argument("--repeats", type=int, default=3, help="warm repeats of copying unlearning (median)")
    args = parser.parse_args(argv)
    if args.cell:
        result = prepare_cell(args.cell[0], int(args.cell[1]), args.forget, args.steps, args.thetas)
    elif args.case:
        result = run_case(args.case[0], int(args.case[1]), args.case[2], args.forget, args.repeats, args.thetas)
    elif args.check:
        result = extrapolation_check(args.check[0], int(args.check[1]), args.steps)
    else:
        result = run_scale(args.sizes, args.n_train, args.methods, args.forget, args.steps, args.repeats)
        plot_scale(result["scale"], Path("bench/results/scale.png"))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
