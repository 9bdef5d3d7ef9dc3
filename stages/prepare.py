"""DVC stage `prepare`: make or load the data, assign record ids, fix the test split, standardise, and
subsample a large table to `prepare.max_records` rows per part."""

from bayesunlearn.io import atomic, datasets, store

from .common import PREPARED, run, settings


def main() -> None:
    p = settings().prepare
    frame, origin = datasets.load_source(p)
    train, test, scaling = datasets.prepare(frame, p.test_fraction, p.seed, origin, p.target_kind,
                                            datasets.class_labels(p))
    train, test = (datasets.subsample(part, p.max_records, p.seed) for part in (train, test))
    store.save_table(PREPARED / "train.csv", train)
    store.save_table(PREPARED / "test.csv", test)
    atomic.write_json(PREPARED / "scaling.json", {**scaling.to_dict(), "source": p.source,
                                                  "n_train": len(train), "n_test": len(test)})
    print(f"prepared {len(train)} training and {len(test)} test records from {origin}")


if __name__ == "__main__":
    run(main)
