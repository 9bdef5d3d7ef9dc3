"""DVC stage `train`: the MAP of the full training data (never re-run by a deletion request)."""

from bayesunlearn.io import atomic, datasets, store

from .common import METRICS, MODELS, PREPARED, run, settings


def main() -> None:
    from bayesunlearn.model.likelihood import build_model
    from bayesunlearn.model.training import fit_map

    s = settings()
    x, y = datasets.arrays(store.load_table(PREPARED / "train.csv"))
    model = build_model(s.model, x.shape[1], datasets.n_classes(s.prepare))
    theta, info = fit_map(model, x, y, model.spec.init(s.train.seed), s.train)
    store.save_arrays(MODELS / "original" / "map.npz", {"model": model.to_dict(), "seed": s.train.seed},
                      {"theta": theta})
    atomic.write_json(METRICS / "train.json", {**info, "n_params": model.spec.n_params, "n_train": len(x)})
    print(f"MAP of {model.spec.n_params} parameters on {len(x)} records: objective {info['objective']:.4f}, "
          f"|grad| {info['grad_norm']:.2e}")


if __name__ == "__main__":
    run(main)
