"""DVC stage `summarize`: one table of every method's headline metrics (metrics/methods.csv).

`dvc metrics show` lists each method's own file; this table puts them side by
side, sorted by gain, for `dvc plots show` and for people.
"""

import json

import pandas as pd

from bayesunlearn.io import store
from bayesunlearn.errors import ConfigError

from .common import METRICS, run, settings

COLUMNS = ["method", "posterior", "operator", "failed", "gain", "indistinguishability",
           "pred_kl_unlearned_retrained", "pred_kl_original_retrained", "pred_kl_retrain_floor",
           "kl_unlearned_retrained", "kl_reverse_unlearned_retrained", "w2_unlearned_retrained"]
MEMBERSHIP = ["mia_auc_unlearned", "mia_auc_retrained"]
CLASSIFIER_FIT = ["test_accuracy_unlearned", "test_ece_unlearned", "forgotten_accuracy_unlearned"]
FIT = {"gaussian": ["test_rmse_unlearned", "forgotten_rmse_unlearned"],  # the test fit's columns per likelihood
       "bernoulli": CLASSIFIER_FIT, "categorical": CLASSIFIER_FIT}


def main() -> None:
    # only the configured methods: files of methods removed from params.yaml may linger
    paths = [METRICS / "evaluate" / f"{name}.json" for name in sorted(settings().methods)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ConfigError(f"no evaluation for {missing}; run `dvc repro` for those methods first.")
    rows = [json.loads(path.read_text()) for path in paths]
    columns = COLUMNS + FIT[settings().model.likelihood] + MEMBERSHIP
    table = pd.DataFrame(rows)[columns].sort_values(["failed", "gain"], kind="stable")
    store.save_table(METRICS / "methods.csv", table)
    print(table[["method", "failed", "gain", "indistinguishability"]].to_string(index=False))


if __name__ == "__main__":
    run(main)
