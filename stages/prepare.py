"""DVC stage `prepare`: make or load the data, assign record ids, fix the test split, standardise."""

from bayesunlearn import atomic, datasets, store
from bayesunlearn.errors import ConfigError

from .common import PREPARED, params, run


def load_source(p: dict):
    source = p.get("source")
    if source == "two_clusters":
        g = p["two_clusters"]
        return datasets.two_clusters(int(g["n_records"]), int(p["seed"]), float(g["noise_std"]), g["clusters"]), source
    if source == "diabetes":
        return datasets.diabetes(), source
    if source == "csv":
        c = p["csv"]
        return datasets.from_csv(c["path"], c["target"], c.get("id_column")), c["path"]
    raise ConfigError(f"prepare.source={source!r} is not one of 'two_clusters', 'diabetes', 'csv'.")


def main() -> None:
    p = params("prepare")
    frame, origin = load_source(p)
    train, test, scaling = datasets.prepare(frame, float(p["test_fraction"]), int(p["seed"]), origin)
    store.save_table(PREPARED / "train.csv", train)
    store.save_table(PREPARED / "test.csv", test)
    atomic.write_json(PREPARED / "scaling.json", {**scaling.to_dict(), "source": p["source"],
                                                  "n_train": len(train), "n_test": len(test)})
    print(f"prepared {len(train)} training and {len(test)} test records from {origin}")


if __name__ == "__main__":
    run(main)
