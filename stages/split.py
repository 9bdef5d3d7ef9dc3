"""DVC stage `split`: apply every deletion request in data/requests/ to the training set.

Writes the retained records, the forgotten records and a summary that names
requests by id and counts records, never listing their values.
"""

from bayesunlearn import atomic, requests, store
from bayesunlearn.datasets import ID

from .common import PREPARED, SPLIT, params, run


def main() -> None:
    p = params("split")
    train = store.load_table(PREPARED / "train.csv")
    test = store.load_table(PREPARED / "test.csv")
    pending = requests.load_requests(p["requests_dir"])
    forgotten_ids = set(requests.validate_all(pending, set(train[ID]), set(test[ID])))
    is_forgotten = train[ID].isin(forgotten_ids)
    store.save_table(SPLIT / "retained.csv", train[~is_forgotten])
    store.save_table(SPLIT / "forgotten.csv", train[is_forgotten])
    atomic.write_json(SPLIT / "summary.json", {
        "requests": [{"request_id": r.request_id, "n_records": len(set(r.record_ids))} for r in pending],
        "n_retained": int((~is_forgotten).sum()), "n_forgotten": int(is_forgotten.sum()),
    })
    print(f"{len(pending)} requests: forgetting {int(is_forgotten.sum())} of {len(train)} training records")


if __name__ == "__main__":
    run(main)
