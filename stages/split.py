"""DVC stage `split`: apply every deletion request in the requests folder to the training set.

Writes the retained records, the forgotten records and a summary that names
requests by id and counts records, never listing their values. Before writing,
it checks that it forgets at least what the ledger records as forgotten
(lineage.monotonic): forgetting only grows.
"""

from pathlib import Path

from bayesunlearn.io import contracts, datasets, requests, store
from bayesunlearn.io.datasets import ID
from lineage import monotonic
from lineage.words import count

from .common import PREPARED, SPLIT, run, settings


def decide(folder: Path, max_bytes: int, known: requests.KnownIds) -> tuple[list[requests.DeletionRequest], set[str]]:
    """The requests in force and the ids they forget, by the one request schema (the intake flow's rules)."""
    pending = requests.load_requests(folder, max_bytes)
    return pending, set(requests.forgotten_ids(pending, known))


def main() -> None:
    p = settings().split
    train = store.load_table(PREPARED / "train.csv")
    known = requests.KnownIds(frozenset(train[ID]), frozenset(datasets.record_ids(PREPARED / "test.csv")))
    pending, forgotten_ids = decide(Path(p.requests_dir), p.max_request_bytes, known)
    monotonic.check(Path("."), pending, list(train[ID]), p.requests_dir)
    is_forgotten = train[ID].isin(forgotten_ids)
    store.save_table(SPLIT / "retained.csv", train[~is_forgotten])
    store.save_table(SPLIT / "forgotten.csv", train[is_forgotten])
    contracts.SplitSummary(
        requests=[contracts.AppliedRequest(request_id=r.request_id, n_records=len(set(r.record_ids)))
                  for r in pending],
        n_retained=int((~is_forgotten).sum()), n_forgotten=int(is_forgotten.sum()),
    ).write(contracts.SPLIT_SUMMARY)
    print(f"{count(len(pending), 'request')}: forgetting {int(is_forgotten.sum())} of "
          f"{count(len(train), 'training record')}")


if __name__ == "__main__":
    run(main)
