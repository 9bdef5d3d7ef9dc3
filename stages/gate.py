"""DVC stage `gate`: judge the production method's unlearned posterior without a retrain.

Writes metrics/gate.json (contracts.GateReport): the decision ("pass" or
"fallback"), its reasons and signals (the retained records' NLL change under the
served predictive, membership AUC, the operator's own status and repair, and
the gradient residual at the moved mean, the original MAP's gradient norm from
metrics/train.json: above train.grad_tolerance the decision is fallback). Thresholds:
params.yaml `gate`. A poor verdict of the nightly audit on this very unlearned
posterior (metrics/audit.json, stages/verdict.py) turns the decision to fallback.
"""

import json

from bayesunlearn.io import contracts

from .common import METRICS, MODELS, load_splits, run, settings
from .verdict import VERDICT, AuditVerdict, honour


def main() -> None:
    thresholds = settings().gate
    chosen = settings().method(thresholds.method)
    from bayesunlearn.unlearning.gate import gate
    from bayesunlearn.posteriors.posterior import GaussianPosterior

    original = GaussianPosterior.load(MODELS / "original" / f"{chosen.posterior}.npz")
    unlearned_path = MODELS / "unlearned" / f"{thresholds.method}.npz"
    unlearned = GaussianPosterior.load(unlearned_path)
    report = json.loads((METRICS / "unlearn" / f"{thresholds.method}.json").read_text())
    s = load_splits()
    decision = gate(thresholds.method, original, unlearned, report, s.x_retained, s.y_retained, s.x_forgotten,
                    s.y_forgotten, s.x_test, s.y_test, thresholds, contracts.TrainReport.read(contracts.TRAIN_REPORT))
    decision = honour(decision, AuditVerdict.read(VERDICT), unlearned_path)
    decision.write(contracts.GATE_REPORT)
    print(f"gate for {thresholds.method}: {'pass' if decision.passed else 'FALLBACK'} "
          f"(retained NLL change {decision.retained_nll_change:.3g}, membership AUC "
          f"{'n/a' if decision.mia_auc is None else format(decision.mia_auc, '.3g')}) "
          + "; ".join(decision.reasons))


if __name__ == "__main__":
    run(main)
