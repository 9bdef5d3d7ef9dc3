"""DVC stage `retrain`: the gold standard, posteriors fitted from scratch on retained data only.

Retrain 0 uses the original's initialisation seed (the reference); the others
use further seeds so that `evaluate` can measure the spread among retrains.
"""

from tqdm import tqdm

from bayesunlearn import atomic, datasets, store
from bayesunlearn.config import ConfigError, build_model, train_config

from .common import METRICS, MODELS, SPLIT, deterministic_tensorflow, params, run


def main() -> None:
    deterministic_tensorflow()
    from bayesunlearn.fitting import fit_from_scratch

    n_seeds = int(params("retrain")["seeds"])
    if n_seeds < 1:
        raise ConfigError(f"retrain.seeds={n_seeds} must be at least 1 (2 or more to measure the noise floor).")
    x, y = datasets.arrays(store.load_table(SPLIT / "retained.csv"))
    model = build_model(params("model"), x.shape[1])
    seed0, config = int(params("train")["seed"]), train_config(params("train"))
    infos = {}
    for k in tqdm(range(n_seeds), desc="retrain from scratch", unit="seed"):
        posterior, infos[f"seed_{seed0 + k}"] = fit_from_scratch(model, x, y, seed0 + k, config)
        posterior.save(MODELS / "retrained" / f"retrain_{k}.npz")
    atomic.write_json(METRICS / "retrain.json", infos)


if __name__ == "__main__":
    run(main)
