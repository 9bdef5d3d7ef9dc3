"""DVC stage `unlearn@METHOD`: remove the forgotten records from the original posterior.

Usage: python -m stages.unlearn METHOD (a key of params.yaml `methods`).
Reads the original posterior and the forgotten records; the retained records
only for a method that refines on them (`refine` > 0, about one gradient pass
per step). Not retraining on them is what makes unlearning cheap. A method that fails
(diverging EUBO, degenerate importance weights, refused repair) writes the
original posterior unchanged and says so in metrics/unlearn/METHOD.json, so
that downstream judges can fall back to retraining.
"""

from bayesunlearn.io import atomic, datasets, store
from bayesunlearn.errors import NotPositiveDefinite

from .common import METRICS, MODELS, SPLIT, one_argument, run, settings


def main() -> None:
    name = one_argument(__doc__)
    chosen = settings().method(name)
    from bayesunlearn.unlearning.methods import apply
    from bayesunlearn.posteriors.posterior import GaussianPosterior

    original = GaussianPosterior.load(MODELS / "original" / f"{chosen.posterior}.npz")
    x_f, y_f = datasets.arrays(store.load_table(SPLIT / "forgotten.csv"))
    retained = datasets.arrays(store.load_table(SPLIT / "retained.csv")) if chosen.reads_retained else None
    try:
        unlearned, report = apply(chosen, original, x_f, y_f, retained)
    except NotPositiveDefinite as err:  # repair "refuse": a failed unlearning, not a broken pipeline
        unlearned, report = None, {"status": "failed", "reason": str(err)}
    (unlearned or original).save(MODELS / "unlearned" / f"{name}.npz")
    atomic.write_json(METRICS / "unlearn" / f"{name}.json", {"method": name, **report})
    print(f"{name}: forgot {len(x_f)} records: {report['status']} {report.get('reason', '')}")


if __name__ == "__main__":
    run(main)
