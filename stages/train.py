"""DVC stage `train`: the MAP of the full training data (never re-run by a deletion request)."""

import sys

from bayesunlearn.io import contracts, datasets, store

from .common import MODELS, PREPARED, run, settings


def main() -> None:
    from bayesunlearn.model.likelihood import build_model
    from bayesunlearn.model.training import fit_map

    s = settings()
    x, y = datasets.arrays(store.load_table(PREPARED / "train.csv"))
    model = build_model(s.model, x.shape[1], datasets.n_classes(s.prepare))
    theta, info = fit_map(model, x, y, model.spec.init(s.train.seed), s.train)
    store.save_arrays(MODELS / "original" / "map.npz", {"model": model.to_dict(), "seed": s.train.seed},
                      {"theta": theta})
    report = contracts.TrainReport(**info, n_params=model.spec.n_params, n_train=len(x))
    report.write(contracts.TRAIN_REPORT)
    print(f"MAP of {model.spec.n_params} parameters on {len(x)} records: objective {info['objective']:.4f}, "
          f"|grad| {info['grad_norm']:.2e}")
    if problem := report.original_problem():
        print(f"warning: {problem}; the gate serves no unlearned posterior of it", file=sys.stderr)


if __name__ == "__main__":
    run(main)
