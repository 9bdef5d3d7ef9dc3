"""DVC stage `retrain`: MAPs from scratch on the retained data only, one per seed.

Retrain 0 uses the original's initialisation seed (the reference); the others
use further seeds so that `evaluate` can measure the spread among retrains.
Posteriors of each kind are fitted at these MAPs by `retrain_posterior@KIND`.
"""

from tqdm import tqdm

from bayesunlearn import atomic, datasets, store
from bayesunlearn.config import build_model, train_config
from bayesunlearn.errors import ConfigError

from .common import METRICS, MODELS, SPLIT, deterministic_tensorflow, params, run


def main() -> None:
    deterministic_tensorflow()
    from bayesunlearn.training import fit_map

    n_seeds = int(params("retrain")["seeds"])
    if n_seeds < 1:
        raise ConfigError(f"retrain.seeds={n_seeds} must be at least 1 (2 or more to measure the noise floor).")
    x, y = datasets.arrays(store.load_table(SPLIT / "retained.csv"))
    model = build_model(params("model"), x.shape[1])
    seed0, config = int(params("train")["seed"]), train_config(params("train"))
    infos = {}
    for k in tqdm(range(n_seeds), desc="retrain from scratch", unit="seed"):
        theta, infos[f"seed_{seed0 + k}"] = fit_map(model, x, y, model.spec.init(seed0 + k), config)
        store.save_arrays(MODELS / "retrained" / "maps" / f"map_{k}.npz",
                          {"model": model.to_dict(), "seed": seed0 + k}, {"theta": theta})
    atomic.write_json(METRICS / "retrain.json", infos)


if __name__ == "__main__":
    run(main)
