"""DVC stage `unlearn`: divide the forgotten records out of the original posterior.

Reads only the original posterior and the forgotten records, never the
retained data: that is what makes unlearning cheap.
"""

from bayesunlearn import atomic, datasets, store

from .common import METRICS, MODELS, SPLIT, deterministic_tensorflow, run


def main() -> None:
    deterministic_tensorflow()
    from bayesunlearn.posterior import GaussianPosterior
    from bayesunlearn.unlearn import forget

    original = GaussianPosterior.load(MODELS / "original" / "laplace.npz")
    x_f, y_f = datasets.arrays(store.load_table(SPLIT / "forgotten.csv"))
    unlearned, report = forget(original, x_f, y_f)
    unlearned.save(MODELS / "unlearned" / "laplace.npz")
    atomic.write_json(METRICS / "unlearn.json", report.to_dict())
    print(f"forgot {report.n_forgotten} records; min eigenvalue of Λ_r {report.min_eig_precision:.4g}, "
          f"mean moved by {report.step_norm:.4g}")


if __name__ == "__main__":
    run(main)
