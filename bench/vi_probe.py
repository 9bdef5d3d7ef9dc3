"""Why a VI posterior does or does not move under unlearning: one table of the real-data study, no retrains.

For the table's original (the MAP, its diagonal and full GGN Laplace fits, and the VI kinds the VI
methods of `real_study.methods` use) and one random deletion, reports:
- the fit: test NLL (original units) of each posterior, the VI mean's distance to the MAP, and the
  VI marginal standard deviations against the Laplace ones (the mean-field ELBO optimum of a Gaussian
  target has σᵢ² = 1/Λᵢᵢ, the diagonal GGN's);
- the adjusted likelihood: the share of q's samples inside the region of λ = `threshold`, as the
  density ratio q(θ) ≥ λ·max q of the paper and as the share of q's mass the project uses;
- each VI method: its status and reason, how far it moved q (‖Δμ‖ in q's whitened coordinates,
  max |Δ log σ|), KL(q_u ‖ q) and the importance weights' effective sample size.

    python -m bench.vi_probe --source concrete --fraction 0.05
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def probe(source: str, fraction: float, seed: int, params) -> dict:
    import scipy.stats

    from bayesunlearn.experiments import events
    from bayesunlearn.experiments.grid import forget_mask
    from bayesunlearn.io.sections import VariationalUnlearning
    from bayesunlearn.posteriors.fit import FitSettings
    from bayesunlearn.posteriors.laplace import fit_laplace
    from bayesunlearn.unlearning.methods import apply
    from bayesunlearn.unlearning.variational import half_sq_radius

    methods = {name: m for name, m in params.chosen_methods(params.real_study.methods).items()
               if m.posterior.startswith("vi_")}
    setup = events.Setup(methods, params.train, FitSettings.of(params), params.train.seed, 0, params.gate,
                         params.audit, [])
    table = events.load_table(source, params.prepare, params.real_study.max_train_records)
    model = table.model(params.model)
    originals = events.fit_originals(model, table, setup)
    full = originals[events.BASE_KIND]
    originals["diag_ggn"] = fit_laplace(model, full.mean, table.x, table.y, "diag_ggn")
    n_params = len(full.mean)
    shift = float(np.log(table.y_std))

    def sd(post) -> np.ndarray:
        return np.sqrt(np.diag(post.dense_covariance()))

    fit = {kind: {"test_nll": float(post.predictive_nll(table.x_test, table.y_test).mean() + shift)}
           for kind, post in originals.items()}
    for kind, post in originals.items():
        if kind.startswith("vi_"):
            fit[kind] |= {"mean_to_map": float(np.linalg.norm(post.mean - full.mean)),
                          "sd_over_full_ggn_median": float(np.median(sd(post) / sd(full))),
                          "sd_over_diag_ggn_median": float(np.median(sd(post) / sd(originals["diag_ggn"])))}
    f = forget_mask(table.x, "random", fraction, seed)
    half_sq = 0.5 * scipy.stats.chi2.rvs(n_params, size=100_000, random_state=0)  # ½‖z‖² of q's own samples
    out = {"source": source, "n_params": n_params, "n_forgotten": int(f.sum()), "fit": fit, "methods": {}}
    for name, method in methods.items():
        q = originals[method.posterior]
        row: dict = {}
        if isinstance(method, VariationalUnlearning) and method.threshold > 0:
            row["inside_density_region"] = float(np.mean(half_sq <= -np.log(method.threshold)))
            row["inside_mass_region"] = float(np.mean(half_sq <= half_sq_radius(method.threshold, n_params)))
        q_u, report = apply(method, q, table.x[f], table.y[f], (table.x[~f], table.y[~f]))
        row |= {k: report.get(k) for k in ("status", "reason", "kl_to_original", "effective_sample_size")
                if k in report}
        if q_u is not None:
            white = np.linalg.solve(np.linalg.cholesky(q.dense_covariance()), q_u.mean - q.mean)
            row["moved_whitened"] = float(np.linalg.norm(white))
            row["max_abs_dlog_sd"] = float(np.max(np.abs(np.log(sd(q_u) / sd(q)))))
        out["methods"][name] = row
    return out


def main(argv: list[str] | None = None) -> None:
    from bayesunlearn.io import settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="concrete")
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    result = probe(args.source, args.fraction, args.seed, settings.load(args.params))
    print(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
