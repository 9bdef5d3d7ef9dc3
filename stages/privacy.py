"""DVC stage `privacy`: the nightly audit's per-record membership test of the forgotten records.

Fits `audit.shadow_retrains` retrains from scratch on the retained data (seeds
after the reference retrains', so none of them is the reference), then writes
metrics/privacy.json (contracts.PrivacyReport): the share of forgotten records
the test tells apart under the served posterior, and under the reference retrain
(models/retrained/KIND/retrain_0.npz), a fresh retrain the shadows do not include.
"""

from bayesunlearn.io import contracts

from .common import MODELS, load_splits, run, settings


def main() -> None:
    from bayesunlearn.experiments import privacy
    from bayesunlearn.io import datasets
    from bayesunlearn.model.likelihood import build_model
    from bayesunlearn.posteriors.fit import FitSettings
    from bayesunlearn.posteriors.posterior import GaussianPosterior

    s = settings()
    kind, k, alpha = s.gate.posterior, s.audit.shadow_retrains, s.audit.privacy_alpha
    splits = load_splits()
    model = build_model(s.model, splits.x_retained.shape[1], datasets.n_classes(s.prepare))  # as retrain trains
    served = GaussianPosterior.load(MODELS / "served" / "posterior.npz")
    reference = GaussianPosterior.load(MODELS / "retrained" / kind / "retrain_0.npz")
    shares = {"served": None, "retrain": None}
    if len(splits.y_forgotten):
        first = s.train.seed + s.retrain.seeds
        shadow = privacy.shadows(kind, model, splits.x_retained, splits.y_retained, range(first, first + k),
                                 s.train, FitSettings.of(s))
        test = privacy.RecordTest.of(shadow, splits.x_forgotten, splits.y_forgotten, alpha)
        shares = {"served": test.share(served), "retrain": test.share(reference)}
    report = contracts.PrivacyReport(shadow_retrains=k, alpha=alpha, n_forgotten=len(splits.y_forgotten),
                                     told_apart_served=shares["served"], told_apart_retrain=shares["retrain"])
    report.write(contracts.PRIVACY_REPORT)
    print(f"per-record membership test (K = {k}, α = {alpha:g}): told apart under the served posterior "
          f"{shares['served']}, under a fresh retrain {shares['retrain']}")


if __name__ == "__main__":
    run(main)
