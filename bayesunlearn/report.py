"""Print the headline metrics of a run in a few readable lines: `python -m bayesunlearn.report`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HEADLINE = {
    "pred_kl_unlearned_retrained": "predictive KL(retrain ‖ unlearned)",
    "pred_kl_original_retrained": "predictive KL(retrain ‖ original, no unlearning)",
    "pred_kl_retrain_floor": "predictive KL between retrains (noise floor)",
    "gain": "gain (unlearned / original; < 1 = unlearning helped)",
    "indistinguishability": "indistinguishability (vs floor; ≤ 1 = like a retrain)",
    "test_rmse_unlearned": "test RMSE unlearned",
    "test_rmse_retrained": "test RMSE retrained",
    "forgotten_rmse_unlearned": "forgotten-set RMSE unlearned",
    "forgotten_rmse_retrained": "forgotten-set RMSE retrained",
    "min_eig_precision": "min eigenvalue of Λ_r",
    "unlearn_seconds": "unlearning time [s]",
    "retrain_seconds": "retraining time [s]",
    "speedup": "speedup (retrain / unlearn)",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", default=["metrics/evaluate.json", "metrics/timing.json"],
                        help="metrics JSON files (default: the evaluate stage's)")
    args = parser.parse_args(argv)
    values: dict = {}
    for name in args.files:
        if Path(name).exists():
            values.update(json.loads(Path(name).read_text()))
    for key, label in HEADLINE.items():
        if key in values:
            print(f"{label:<55} {values[key]:.4g}")


if __name__ == "__main__":
    main()
