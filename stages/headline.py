"""DVC stage `headline`: the main job's result in one small file, metrics/headline.json (`dvc metrics show`).

What was forgotten, which method served it and how the gate decided, and how
close the served posterior is to retraining from scratch, judged against the
spread among retrains, and whether the MAPs behind it converged (a retrain
that did not is an unreliable reference). Deterministic (no timings), so
`dvc.lock` can vouch for it; `python -m bayesunlearn.experiments.report` adds
the timings.
"""

import json
import sys

from bayesunlearn.io import contracts

from .common import METRICS, run, settings


def main() -> None:
    method = settings().gate.method
    gate = contracts.GateReport.read(contracts.GATE_REPORT)
    provenance = contracts.Provenance.read(contracts.PROVENANCE)
    summary = contracts.SplitSummary.read(contracts.SPLIT_SUMMARY)
    evaluation = json.loads((METRICS / "evaluate" / f"{method}.json").read_text())
    original, retrains = (contracts.TrainReport.read(contracts.TRAIN_REPORT),
                          contracts.RetrainReport.read(contracts.RETRAIN_REPORT))
    unconverged = [problem for problem in [original.original_problem()] if problem] + retrains.problems()
    headline = contracts.Headline(
        method=method, served=provenance.path, gate=gate.decision, requests=summary.request_ids,
        forgotten=summary.n_forgotten, retained=summary.n_retained, gain=evaluation["gain"],
        indistinguishability=evaluation["indistinguishability"],
        **{f"test_{score}{suffix}": evaluation.get(f"test_{score}_{who}") for score in ("rmse", "accuracy", "ece")
           for suffix, who in (("", "unlearned"), ("_retrained", "retrained"))},
        mia_auc=evaluation["mia_auc_unlearned"], mia_auc_retrained=evaluation["mia_auc_retrained"],
        original_grad_norm=original.grad_norm, reference_grad_norm=retrains.max_grad_norm, unconverged=unconverged)
    headline.write(contracts.HEADLINE)
    print(f"headline: {method} served on the {provenance.path} path; gain {headline.gain:.3g}, "
          f"indistinguishability {headline.indistinguishability:.3g}")
    for problem in unconverged:
        print(f"warning: {problem}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
