"""DVC stage `retrain`: MAPs from scratch on the retained data only, one per seed.

Retrain 0 uses the original's initialisation seed (the reference); the others
use further seeds so that `evaluate` can measure the spread among retrains.
Posteriors of each kind are fitted at these MAPs by `retrain_posterior@KIND`.
"""

import sys

from bayesunlearn.io import contracts, datasets, store
from bayesunlearn.io.progress import progress

from .common import MODELS, SPLIT, run, settings


def main() -> None:
    from bayesunlearn.model.likelihood import build_model
    from bayesunlearn.model.training import fit_map

    s = settings()
    n_seeds = s.retrain.seeds
    x, y = datasets.arrays(store.load_table(SPLIT / "retained.csv"))
    model = build_model(s.model, x.shape[1], datasets.n_classes(s.prepare))
    seed0, config = s.train.seed, s.train
    infos = {}
    for k in progress(range(n_seeds), desc="retrain from scratch", unit="seed"):
        theta, infos[f"seed_{seed0 + k}"] = fit_map(model, x, y, model.spec.init(seed0 + k), config)
        store.save_arrays(MODELS / "retrained" / "maps" / f"map_{k}.npz",
                          {"model": model.to_dict(), "seed": seed0 + k}, {"theta": theta})
    report = contracts.RetrainReport(fits={seed: contracts.MapFit(**info) for seed, info in infos.items()})
    report.write(contracts.RETRAIN_REPORT)
    for problem in report.problems():
        print(f"warning: {problem}", file=sys.stderr)


if __name__ == "__main__":
    run(main)
