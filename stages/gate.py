"""DVC stage `gate`: judge the production method's unlearned posterior without a retrain.

Writes metrics/gate.json: the decision ("pass" or "fallback"), its reasons and
signals (gradient-residual ratio on the retained data, membership AUC, the
operator's own status and repair). Thresholds: params.yaml `gate`.
"""

import json

from bayesunlearn import atomic
from bayesunlearn.errors import ConfigError

from .common import METRICS, MODELS, deterministic_tensorflow, load_splits, method, params, run


def main() -> None:
    p = params("gate")
    chosen = method(p["method"])
    if p.get("posterior") != chosen.posterior:
        raise ConfigError(f"gate.posterior={p.get('posterior')!r} must name the posterior of gate.method "
                          f"{chosen.name!r}, which is {chosen.posterior!r}.")
    deterministic_tensorflow()
    from bayesunlearn.gate import GateThresholds, gate
    from bayesunlearn.posterior import GaussianPosterior

    thresholds = GateThresholds(float(p["max_residual_ratio"]), float(p["max_mia_auc"]),
                                tuple(p.get("allowed_repairs", ["none"])))
    original = GaussianPosterior.load(MODELS / "original" / f"{chosen.posterior}.npz")
    unlearned = GaussianPosterior.load(MODELS / "unlearned" / f"{chosen.name}.npz")
    report = json.loads((METRICS / "unlearn" / f"{chosen.name}.json").read_text())
    s = load_splits()
    decision = gate(original, unlearned, report, s.x_retained, s.y_retained, s.x_forgotten, s.y_forgotten,
                    s.x_test, s.y_test, thresholds)
    atomic.write_json(METRICS / "gate.json", {"method": chosen.name, **decision.to_dict(),
                                              "n_forgotten": len(s.y_forgotten)})
    print(f"gate for {chosen.name}: {'pass' if decision.passed else 'FALLBACK'} "
          f"(residual ratio {decision.residual_ratio:.3g}, membership AUC "
          f"{'n/a' if decision.mia_auc is None else format(decision.mia_auc, '.3g')}) "
          + "; ".join(decision.reasons))


if __name__ == "__main__":
    run(main)
