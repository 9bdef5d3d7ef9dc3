"""Deletion events on a real table, each judged twice: by the audit's truth and by the gate.

An event forgets a random share of the training records, or a *segment* (a
customer segment leaving): every record of one category on tables with
categorical columns, else every record of one k-means cluster of the
standardised inputs. For every event and method:
- the audit's truth, from `retrain.seeds` retrains from scratch: gain and
  indistinguishability (evaluation.compare), harmful when the operator failed
  or the audit calls the result poor, immaterial when neither the original nor
  the result differs detectably from the retrains (sections.Audit.verdict);
- the gate's decision, from the signals it has in production (gate.gate);
- the fit: test RMSE and NLL in the target's units (a binary target: accuracy,
  NLL and expected calibration error), and the membership AUC of the unlearned,
  original and retrained posteriors;
- the per-record membership test (experiments/privacy.py) with the retrains as
  its shadows: the share of forgotten records it tells apart under the unlearned
  posterior and under one more retrain the shadows do not include (the
  reference); more than the reference's share allows (detection.membership_problem)
  is an objection that makes the event harmful whatever the predictive says. The
  same objection against the original, which saw the records, is the positive
  control: where it is absent the test had no power on the event.
Fine-tuning (unlearning.finetune) runs beside the methods as the baseline a
practitioner tries first; the gate does not judge it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesunlearn.errors import DataError, UserError
from bayesunlearn.experiments import confusion
from bayesunlearn.experiments.evaluation import compare, time_warm
from bayesunlearn.experiments.grid import forget_mask
from bayesunlearn.experiments.privacy import RecordTest
from bayesunlearn.io import datasets
from bayesunlearn.io.contracts import Convergence
from bayesunlearn.io.datasets import Splits
from bayesunlearn.io.progress import PATIENCE, progress
from bayesunlearn.io.sections import Audit, Gate, Method, Model, Prepare, RealStudy, Train
from bayesunlearn.io.settings import LIKELIHOOD_OF
from bayesunlearn.model.likelihood import RegressionModel, build_model, objective
from bayesunlearn.model.training import fit_map
from bayesunlearn.posteriors.fit import FitSettings, fit_from_scratch, fit_posterior
from bayesunlearn.posteriors.posterior import GaussianPosterior
from bayesunlearn.unlearning.finetune import finetune
from bayesunlearn.unlearning.gate import gate, retained_nll_change
from bayesunlearn.unlearning.methods import apply

FINETUNE = "finetune_{steps}"  # the method name of a fine-tuning baseline
BASE_KIND = "full_ggn"  # the curvature fine-tuning keeps (a practitioner has no other)


@dataclass(frozen=True)
class Table:
    """A prepared real table: standardised arrays, input names, categories and the target's scale (class
    labels 0 … K − 1 are kept: mean 0, scale 1), and the likelihood that fits its target."""

    name: str
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    features: list[str]
    categories: dict[str, list[str]]
    y_mean: float
    y_std: float
    likelihood: str = "gaussian"  # bernoulli for a binary target, categorical for K ≥ 3 classes
    classes: int = 1              # the categorical network's outputs

    @property
    def classifier(self) -> bool:
        return self.likelihood != "gaussian"

    def model(self, section: Model) -> RegressionModel:
        """The network the table is fitted with: params.yaml's `model` with the table's likelihood and classes."""
        return build_model(section.model_copy(update={"likelihood": self.likelihood}), self.x.shape[1], self.classes)


def load_table(name: str, prepare: Prepare, max_records: int) -> Table:
    """The packaged table, prepared as the pipeline prepares it; larger training and test parts are
    subsampled (seeded by `prepare.seed`) to `max_records` rows."""
    source = prepare.model_copy(update={"source": name})
    kind = source.target_kind
    train, test, scaling = datasets.prepare(datasets.packaged(name), prepare.test_fraction, prepare.seed, name, kind,
                                            datasets.class_labels(source))
    train, test = (datasets.subsample(part, max_records, prepare.seed) for part in (train, test))
    (x, y), (x_test, y_test) = datasets.arrays(train), datasets.arrays(test)
    return Table(name, x, y, x_test, y_test, scaling.features, scaling.categories, scaling.target_mean,
                 scaling.target_std, LIKELIHOOD_OF[kind], datasets.n_classes(source))


@dataclass(frozen=True, eq=False)
class Event:
    """Which training records go: `fraction` is the share asked (random) or the segment's share."""

    mode: str
    seed: int
    fraction: float
    segment: str  # "" for a random deletion, e.g. "cut=Fair" or "cluster 3 of 8"
    mask: np.ndarray


def segment_candidates(table: Table, seed: int, clusters: int, max_share: float) -> list[tuple[str, np.ndarray]]:
    """Every category (an input column `column=value`) of at most `max_share` of the records or, when no
    category is that small (or there are none), every k-means cluster of at most that share."""
    if table.categories:
        names = [f"{c}={v}" for c, values in table.categories.items() for v in values]
        # one-hot inputs are standardised: the category's own records are the positive ones
        found = [(n, table.x[:, table.features.index(n)] > 0) for n in names]
        small = [(n, mask) for n, mask in found if 0 < mask.mean() <= max_share]
        if small:
            return small
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # threads add partial sums in the order they finish: one thread, one answer
        labels = KMeans(n_clusters=clusters, random_state=seed, n_init=10).fit_predict(table.x)
    return [(f"cluster {k} of {clusters}", labels == k) for k in range(clusters)
            if 0 < (labels == k).mean() <= max_share]


def segment(table: Table, seed: int, clusters: int, max_share: float) -> Event:
    """One segment of at most `max_share` of the records, picked by the seed from a fixed order of the
    candidates (seeds that differ modulo their number pick different categories)."""
    candidates = segment_candidates(table, seed, clusters, max_share)
    if not candidates:
        raise DataError(f"{table.name}: no category or cluster holds at most {max_share:.0%} of the records; "
                        "raise real_study.segment_max_share or real_study.segment_clusters")
    label, mask = candidates[np.random.default_rng(0).permutation(len(candidates))[seed % len(candidates)]]
    return Event("segment", seed, float(mask.mean()), label, mask)


def events(table: Table, study: RealStudy) -> list[Event]:
    """Random deletions of every fraction and seed, then one segment per seed."""
    out = []
    if "random" in study.modes:
        out += [Event("random", s, f, "", forget_mask(table.x, "random", f, s))
                for f in study.fractions for s in study.seeds]
    if "segment" in study.modes:
        out += [segment(table, s, study.segment_clusters, study.segment_max_share) for s in study.seeds]
    return out


@dataclass(frozen=True)
class Setup:
    """What every event shares: the methods, how to fit, and the thresholds of the gate and the audit."""

    methods: dict[str, Method]
    train: Train
    fit: FitSettings
    seed0: int  # the original's initialisation seed; retrain k starts from seed0 + k
    n_retrains: int
    gate: Gate
    audit: Audit
    finetune_steps: list[int]

    @property
    def kinds(self) -> list[str]:
        return sorted({m.posterior for m in self.methods.values()} | {BASE_KIND})


def fit_originals(model: RegressionModel, table: Table, setup: Setup) -> dict[str, GaussianPosterior]:
    theta, _ = fit_map(model, table.x, table.y, model.spec.init(setup.seed0), setup.train)
    return {k: fit_posterior(k, model, theta, table.x, table.y, setup.fit) for k in setup.kinds}


@dataclass(frozen=True)
class Membership:
    """The per-record membership test of one event for one posterior kind: the event's retrains as its shadows,
    and the share it tells apart under a fresh retrain the shadows do not include."""

    test: RecordTest
    reference_share: float
    original_share: float    # the positive control: the share under the original, which saw the records


def memberships(model: RegressionModel, splits: Splits, retrains: dict[str, list[GaussianPosterior]],
                originals: dict[str, GaussianPosterior], setup: Setup) -> dict[str, Membership | None]:
    """Per kind, the test of the event (None: fewer than the 2 retrains the test needs as shadows). The
    reference retrain starts from the seed after the shadows'."""
    if setup.n_retrains < 2:
        return dict.fromkeys(retrains)
    x_r, y_r = splits.x_retained, splits.y_retained
    theta = fit_map(model, x_r, y_r, model.spec.init(setup.seed0 + setup.n_retrains), setup.train)[0]
    out = {}
    for kind, shadows in retrains.items():
        test = RecordTest.of(shadows, splits.x_forgotten, splits.y_forgotten, setup.audit.privacy_alpha)
        reference = fit_posterior(kind, model, theta, x_r, y_r, setup.fit)
        out[kind] = Membership(test, test.share(reference), test.share(originals[kind]))
    return out


@dataclass(frozen=True)
class Outcome:
    """One row per method and fine-tuning budget; the posteriors behind them (None: the operator failed)."""

    rows: list[dict]
    unlearned: dict[str, GaussianPosterior | None]
    retrained: dict[str, GaussianPosterior]  # the first retrain of each kind (the plots' reference)
    splits: Splits


def splits_of(table: Table, event: Event) -> Splits:
    f = event.mask
    return Splits(table.x[~f], table.y[~f], table.x[f], table.y[f], table.x_test, table.y_test)


def run_event(table: Table, event: Event, originals: dict[str, GaussianPosterior], setup: Setup) -> Outcome:
    splits = splits_of(table, event)
    model = originals[BASE_KIND].model
    n_steps = setup.n_retrains + len(setup.kinds) + 1 + len(setup.methods) + len(setup.finetune_steps)
    with progress(total=n_steps, desc=f"{table.name}: {event.segment or event.mode} event", delay=PATIENCE) as bar:
        maps = []
        for k in range(setup.n_retrains):
            maps.append(fit_map(model, splits.x_retained, splits.y_retained, model.spec.init(setup.seed0 + k),
                                setup.train)[0])
            bar.update()
        retrains = {}
        for kind in setup.kinds:
            retrains[kind] = [fit_posterior(kind, model, theta, splits.x_retained, splits.y_retained, setup.fit)
                              for theta in maps]
            bar.update()
        membership = memberships(model, splits, retrains, originals, setup)
        bar.update()
        rows, unlearned = [], {}
        # the original's MAP is the base kind's mean; the full data are the retained and the forgotten records
        _, original_grad = objective(model, originals[BASE_KIND].mean, table.x, table.y)
        original_fit = Convergence(grad_norm=float(np.linalg.norm(original_grad)),
                                   grad_tolerance=setup.train.grad_tolerance)
        for name, method in setup.methods.items():
            unlearned[name], report = attempt(method, originals[method.posterior], splits)
            rows.append(judge(table, event, name, originals[method.posterior], unlearned[name], report,
                              retrains[method.posterior], membership[method.posterior], splits, setup, original_fit))
            bar.update()
        for steps in setup.finetune_steps:
            name = FINETUNE.format(steps=steps)
            unlearned[name] = finetune(originals[BASE_KIND], splits.x_retained, splits.y_retained, setup.train, steps)
            rows.append(judge(table, event, name, originals[BASE_KIND], unlearned[name], None,
                              retrains[BASE_KIND], membership[BASE_KIND], splits, setup, original_fit))
            bar.update()
    return Outcome(rows, unlearned, {kind: posts[0] for kind, posts in retrains.items()}, splits)


def time_event(table: Table, event: Event, originals: dict[str, GaussianPosterior], setup: Setup,
               repeats: int) -> dict[str, float]:
    """Warm wall time of every method and fine-tuning budget on one event, and of one cold retrain
    (MAP and full-GGN posterior): the `time` beside each method's quality. Not a DVC-tracked artifact:
    times vary from run to run."""
    splits = splits_of(table, event)
    x_r, y_r = splits.x_retained, splits.y_retained
    out = {}
    for name, method in setup.methods.items():
        out[name] = time_warm(lambda m=method: attempt(m, originals[m.posterior], splits), repeats)
    for steps in setup.finetune_steps:
        out[FINETUNE.format(steps=steps)] = time_warm(
            lambda n=steps: finetune(originals[BASE_KIND], x_r, y_r, setup.train, n), repeats)
    out["retrain"] = time_warm(lambda: fit_from_scratch(BASE_KIND, originals[BASE_KIND].model, x_r, y_r,
                                                        setup.seed0, setup.train, setup.fit), 1)
    return out


def attempt(method: Method, original: GaussianPosterior, splits: Splits) -> tuple[GaussianPosterior | None, dict]:
    """`apply`, with a refusal (e.g. a repair the method does not allow) as a failed result of the study rather
    than an error: None and the reason."""
    try:
        return apply(method, original, splits.x_forgotten, splits.y_forgotten, (splits.x_retained, splits.y_retained))
    except (UserError, np.linalg.LinAlgError) as err:
        return None, {"status": "failed", "reason": str(err)}


def judge(table: Table, event: Event, name: str, original: GaussianPosterior, unlearned: GaussianPosterior | None,
          report: dict | None, retrains: list[GaussianPosterior], membership: Membership | None, splits: Splits,
          setup: Setup, original_fit: Convergence) -> dict:
    """The row of one method on one event; `report` None marks a baseline the gate does not judge."""
    n_judged = len(splits.x_test) + len(splits.x_forgotten)  # the inputs compare judges: test and forgotten
    row = {"dataset": table.name, "mode": event.mode, "segment": event.segment, "fraction": event.fraction,
           "seed": event.seed, "method": name, "n_forgotten": int(event.mask.sum()), "n_judged": n_judged,
           "failed": int(unlearned is None), "harmed": 1, "harmed_predictive": 1, "immaterial": 0,
           "told_apart_unlearned": np.nan, "told_apart_retrained": np.nan, "told_apart_original": np.nan,
           "membership_objection": 0, "membership_power": 0, "shadow_loss_spread": np.nan,
           "gate": "" if report is None else "fallback", "gate_reasons": "", "residual_ratio": np.nan}
    if unlearned is None:
        return row | {"gate_reasons": f"unlearning failed: {report.get('reason', '')}"}
    c = compare(original, unlearned, retrains, splits, parameter_space=False)
    evidence = (c["gain"], c["indistinguishability"], c["pred_kl_unlearned_retrained"] * n_judged,
                c["pred_kl_original_retrained"] * n_judged)
    objection = None
    if membership is not None:
        row["told_apart_unlearned"] = membership.test.share(unlearned)
        row["told_apart_retrained"] = membership.reference_share
        row["told_apart_original"] = membership.original_share
        row["shadow_loss_spread"] = membership.test.spread
        n_forgotten, reference = len(splits.x_forgotten), membership.reference_share
        objection = confusion.objection(n_forgotten, row["told_apart_unlearned"], reference, setup.audit)
        row["membership_power"] = int(confusion.objection(n_forgotten, membership.original_share, reference,
                                                          setup.audit) is not None)
    verdict, _ = setup.audit.verdict(*evidence, membership=objection)
    predictive, _ = setup.audit.verdict(*evidence)
    row["harmed"], row["immaterial"] = int(verdict == "poor"), int(verdict == "immaterial")
    row["harmed_predictive"], row["membership_objection"] = int(predictive == "poor"), int(objection is not None)
    row |= {k: c[k] for k in ("gain", "indistinguishability", "pred_kl_unlearned_retrained",
                              "pred_kl_original_retrained", "pred_kl_retrain_floor")}
    for who in ("original", "unlearned", "retrained"):  # the fit, in the target's own units
        if table.classifier:
            row[f"test_accuracy_{who}"], row[f"test_ece_{who}"] = c[f"test_accuracy_{who}"], c[f"test_ece_{who}"]
        else:
            row[f"test_rmse_{who}"] = c[f"test_rmse_{who}"] * table.y_std
        row[f"test_nll_{who}"] = c[f"test_nll_{who}"] + float(np.log(table.y_std))
        row[f"mia_auc_{who}"] = c[f"mia_auc_{who}"]
    row |= served_shift(original, unlearned, splits)
    if report is not None:
        decision = gate(name, original, unlearned, report, splits.x_retained, splits.y_retained,
                        splits.x_forgotten, splits.y_forgotten, splits.x_test, splits.y_test, setup.gate,
                        original_fit)
        row |= {"gate": decision.decision, "gate_reasons": "; ".join(decision.reasons),
                "residual_ratio": decision.residual_ratio}
    return row


def served_shift(original: GaussianPosterior, unlearned: GaussianPosterior, splits: Splits) -> dict:
    """How far the served (linearised) predictive moved, per part of the data, and what it did to the retained
    records' fit: signals a gate can compute without a retrain."""
    out = {}
    for part, x in (("retained", splits.x_retained), ("forgotten", splits.x_forgotten), ("test", splits.x_test)):
        before, after = original.predictive(x), unlearned.predictive(x)
        out[f"shift_kl_{part}"] = float(np.mean(original.model.predictive_kl(before, after)))
    out["retained_nll_change"] = retained_nll_change(original, unlearned, splits.x_retained, splits.y_retained)
    return out


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, method and mode: medians of the audit's figures, and how often the gate let events through."""
    rows = confusion.with_membership_columns(results).assign(
        fast_path=results["gate"] == "pass", mia_auc_excess=results["mia_auc_unlearned"] - results["mia_auc_retrained"])
    fit = {}  # the test fit's change: RMSE for real targets, accuracy and ECE for binary ones
    for score in ("rmse", "accuracy", "ece"):
        if f"test_{score}_unlearned" in rows:
            rows[f"{score}_change"] = rows[f"test_{score}_unlearned"] - rows[f"test_{score}_original"]
            fit[f"median_{score}_change"] = (f"{score}_change", "median")
    rmse = {k: v for k, v in fit.items() if k == "median_rmse_change"}
    classifier = {k: v for k, v in fit.items() if k != "median_rmse_change"}  # after the regression columns
    grouped = rows.groupby(["dataset", "method", "mode"], sort=True)
    return grouped.agg(events=("gain", "size"), median_gain=("gain", "median"),
                       median_indistinguishability=("indistinguishability", "median"),
                       harmed=("harmed", "sum"), membership_tested=("told_apart_unlearned", "count"),
                       membership_objections=("membership_objection", "sum"),
                       immaterial=("immaterial", "sum"), fast_path=("fast_path", "sum"),
                       **rmse,
                       median_mia_auc_excess=("mia_auc_excess", "median"), **classifier).reset_index()
