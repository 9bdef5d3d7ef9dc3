"""The real-data study: which records a segment deletion takes, how each event is judged, and the gate's table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import REPO

from bayesunlearn.errors import DataError
from bayesunlearn.experiments import events
from bayesunlearn.experiments.confusion import MIN_SMALL_RANDOM_SHARE, confusion, gate_confusion
from bayesunlearn.io import datasets, detection
from bayesunlearn.io.contracts import Convergence
from bayesunlearn.io.sections import Audit, Divide, Gate, RealStudy, Train


def table_of(frame: pd.DataFrame, name: str = "t") -> tuple[events.Table, pd.DataFrame]:
    """A prepared Table and its training part (with record ids, before encoding)."""
    train, test, scaling = datasets.prepare(frame, 0.2, 0, name)
    (x, y), (x_test, y_test) = datasets.arrays(train), datasets.arrays(test)
    return events.Table(name, x, y, x_test, y_test, scaling.features, scaling.categories, scaling.target_mean,
                        scaling.target_std), train


def shops(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    shop = rng.choice(["north", "south", "east", "west", "online"], size=n, p=[0.1, 0.15, 0.2, 0.25, 0.3])
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "shop": shop, "y": a + (shop == "online")})


def test_a_segment_on_a_table_with_categories_is_every_record_of_one_category():
    frame = shops()
    table, train = table_of(frame)
    positions = [int(i.split("-")[1]) for i in train[datasets.ID]]
    seen = set()
    for seed in range(3):
        event = events.segment(table, seed, clusters=8, max_share=0.25)
        column, value = event.segment.split("=")
        truth = frame["shop"].to_numpy()[positions] == value
        assert column == "shop" and np.array_equal(event.mask, truth)
        assert event.fraction == pytest.approx(truth.mean()) and 0 < event.fraction <= 0.25
        seen.add(value)
    assert len(seen) == 3  # distinct seeds, distinct segments (online holds 30 %: never chosen)
    assert "online" not in seen


def test_a_segment_on_a_table_without_categories_is_one_input_cluster():
    rng = np.random.default_rng(2)
    centres = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]])
    blob = np.repeat(np.arange(3), [30, 40, 50])
    x = centres[blob] + 0.3 * rng.normal(size=(120, 2))
    table = events.Table("blobs", x, x[:, 0], x[:2], x[:2, 0], ["u", "v"], {}, 0.0, 1.0)
    for seed in range(3):
        event = events.segment(table, seed, clusters=3, max_share=0.5)
        assert event.segment.startswith("cluster ") and event.segment.endswith(" of 3")
        assert len(set(blob[event.mask])) == 1 and event.mask.sum() == np.sum(blob == blob[event.mask][0])
    with pytest.raises(DataError, match="at most 10%"):
        events.segment(table, 0, clusters=3, max_share=0.1)


def test_the_event_list_covers_every_fraction_and_seed_then_one_segment_per_seed():
    table, _ = table_of(shops())
    study = RealStudy(fractions=[0.05, 0.2], seeds=[0, 4])
    found = events.events(table, study)
    assert [(e.mode, e.fraction, e.seed) for e in found[:4]] == [("random", 0.05, 0), ("random", 0.05, 4),
                                                                  ("random", 0.2, 0), ("random", 0.2, 4)]
    assert [e.mask.sum() for e in found[:4]] == [8, 8, 32, 32]
    assert [e.mode for e in found[4:]] == ["segment", "segment"]


def test_the_audit_calls_a_no_op_nan_and_anything_above_a_limit_poor():
    audit = Audit(max_gain=1.0, max_indistinguishability=10.0)
    assert audit.problems(0.999, 10.0) == []
    assert audit.problems(1.0, 3.0) == ["gain 1 ≥ 1"]  # gain 1: no better than doing nothing
    assert audit.problems(0.5, 10.5) == ["indistinguishability 10.5 > 10"]
    assert len(audit.problems(float("nan"), float("nan"))) == 2
    # a ratio to a spread of ~1e-17 nats is huge, but a difference below what the test detects is no harm
    below, above = 0.999 * audit.detectable_nats, audit.detectable_nats
    assert audit.problems(0.2, 4.5e9, evidence=below) == []
    assert audit.problems(0.2, 4.5e9, evidence=above) == ["indistinguishability 4.5e+09 > 10"]
    assert audit.problems(1.2, 4.5e9, evidence=below) == ["gain 1.2 ≥ 1"]
    assert audit.problems(0.2, 4.5e9, evidence=1.0, detectable=1.0) == ["indistinguishability 4.5e+09 > 10"]


def test_a_deletion_doing_nothing_about_is_undetectable_is_immaterial_unless_the_step_makes_it_detectable():
    audit = Audit()
    limit = audit.detectable_nats
    assert audit.verdict(1.5, 4.5e9, 0.9 * limit, 0.6 * limit) == ("immaterial", [])  # no test sees either
    assert audit.verdict(0.5, 2.0, 0.5 * limit, 0.999 * limit) == ("immaterial", [])
    # doing nothing was undetectable, the step made a detectable difference: harm (its gain is above 1)
    assert audit.verdict(3.0, 4.5e9, 3 * limit, limit / 1.0001)[0] == "poor"
    # doing nothing was detectable: helped or harmed as before
    assert audit.verdict(0.5, 2.0, 0.5 * limit, limit) == ("good", [])
    assert audit.verdict(0.5, 20.0, limit, 2 * limit) == ("poor", ["indistinguishability 20 > 10"])
    assert audit.verdict(float("nan"), float("nan"), float("nan"), float("nan"))[0] == "poor"


def test_settings_refuse_a_study_without_the_production_method_and_clashing_baselines():
    from bayesunlearn.errors import ConfigError
    from bayesunlearn.io import settings

    raw = settings._yaml_load((REPO / "params.yaml").read_text())
    raw["real_study"]["methods"] = ["ggn_newton"]
    with pytest.raises(ConfigError, match="must include the production method 'ggn_refined'"):
        settings.parse(raw)
    raw["real_study"]["methods"], raw["real_study"]["finetune_steps"] = [], [100, 100]
    with pytest.raises(ConfigError, match="lists a budget twice"):
        settings.parse(raw)
    raw["real_study"]["finetune_steps"] = [100]
    raw["methods"]["finetune_7"] = raw["methods"]["ggn_newton"]
    with pytest.raises(ConfigError, match="fine-tuning baselines"):
        settings.parse(raw)


def rows(*cases: tuple[str, str, float, str, int]) -> pd.DataFrame:
    """h: 0 helped, 1 harmed, 2 immaterial."""
    return pd.DataFrame([{"method": m, "mode": mode, "fraction": f, "gate": g, "harmed": int(h == 1),
                          "immaterial": int(h == 2)} for m, mode, f, g, h in cases])


def test_the_confusion_table_counts_gated_events_and_checks_both_targets():
    results = rows(("a", "random", 0.01, "pass", 0), ("a", "random", 0.1, "pass", 0),
                   ("a", "random", 0.1, "fallback", 1), ("a", "random", 0.2, "fallback", 0),
                   ("a", "segment", 0.05, "pass", 1), ("finetune_5", "random", 0.01, "", 1),
                   ("a", "random", 0.05, "pass", 2), ("a", "segment", 0.05, "fallback", 2))
    table = confusion(results)
    assert (table.fast_path_helped, table.fast_path_harmed, table.fallback_helped, table.fallback_harmed) == (2, 1, 1, 1)
    assert (table.fast_path_immaterial, table.fallback_immaterial) == (1, 1)
    results = results.iloc[:6]
    table = confusion(results)
    assert (table.small_random_events, table.small_random_fast_path) == (3, 2)
    assert not table.meets_targets  # a harmful segment took the fast path
    safe = confusion(results.iloc[:4])
    assert safe.fast_path_harmed == 0 and safe.small_random_share == pytest.approx(2 / 3)
    assert safe.meets_targets == (2 / 3 >= MIN_SMALL_RANDOM_SHARE)
    assert math.isnan(confusion(results.iloc[3:4]).small_random_share)
    assert not table.no_harm_on_fast_path and not table.small_random_on_fast_path  # 2/3 < 80 %


def judged_event(method: str, dataset: str, gate: str, gain: float, evidence: float, original: float,
                 indistinguishability: float = 20.0, failed: int = 0, n: int = 250, objection: int = 0,
                 harmed_predictive: int = 0) -> dict:
    """A gated random deletion of 5 % (40 records) whose differences to the retrain are `evidence` and
    `original` nats; `objection`: the per-record membership test tells 10 of the 40 forgotten records apart
    (Binomial(40, 0.05) exceeds 4 with probability 0.048), else 2; the reference retrain none."""
    return {"dataset": dataset, "method": method, "mode": "random", "fraction": 0.05, "gate": gate,
            "failed": failed, "gain": gain, "indistinguishability": indistinguishability, "n_judged": n,
            "n_forgotten": 40, "pred_kl_unlearned_retrained": evidence / n, "pred_kl_original_retrained": original / n,
            "told_apart_unlearned": 10 / 40 if objection else 2 / 40, "told_apart_retrained": 0.0,
            "membership_objection": objection, "membership_power": 1, "harmed_predictive": harmed_predictive}


def test_the_gate_table_is_given_per_table_and_pooled_by_the_test_and_by_the_former_threshold():
    from bayesunlearn.experiments.confusion import FORMER_NATS, rejudged

    audit = Audit()
    t = audit.detectable_nats
    frame = pd.DataFrame([
        judged_event("a", "x", "pass", 0.5, 2.0, 4.0),         # 1 nat: harmed; the test sees neither: immaterial
        judged_event("a", "x", "pass", 0.5, 3 * t, 6 * t),     # detectable, far outside the retrains: harmed
        judged_event("a", "y", "fallback", 0.1, 0.1 * t, t, indistinguishability=2.0),  # helped under both
        judged_event("a", "y", "fallback", float("nan"), float("nan"), 2 * t, failed=1),  # failed: harmed
        judged_event("b", "x", "pass", 0.9, 0.5, 0.55),        # another method: only in the pooled rows
        judged_event("b", "x", "pass", 0.9, 0.5, 0.55, objection=1)])  # immaterial, but records stand out
    results = rejudged(frame, audit)
    assert list(results["harmed"]) == [0, 1, 0, 1, 0, 1] and list(results["immaterial"]) == [1, 0, 0, 0, 1, 0]
    assert list(rejudged(frame, audit, membership=False)["harmed"]) == [0, 1, 0, 1, 0, 0]
    assert list(rejudged(frame, audit, former=True)["harmed"]) == [1, 1, 0, 1, 0, 0]  # no membership test then
    untested = frame.assign(told_apart_unlearned=float("nan"), told_apart_retrained=float("nan"))
    assert list(rejudged(untested, audit)["harmed"]) == [0, 1, 0, 1, 0, 0]  # no shares: no objection
    report = gate_confusion(results, "a", audit)
    criteria = report["criteria"]
    test, former = criteria["likelihood_ratio_test"], criteria["former_threshold"]
    joined = criteria["likelihood_ratio_test_and_membership"]
    assert joined["privacy_alpha"] == audit.privacy_alpha and joined["all_methods"]["fast_path_harmed"] == 2
    assert test["detectable_nats"] == t and former["detectable_nats"] == FORMER_NATS == 1.0
    assert (test["detection_size"], test["detection_power"]) == (0.05, 0.95)
    x_test, x_former = test["tables"]["x"], former["tables"]["x"]
    assert (x_test["fast_path_harmed"], x_test["fast_path_immaterial"], x_test["no_harm_on_fast_path"]) == (1, 1, False)
    assert (x_former["fast_path_harmed"], x_former["fast_path_immaterial"]) == (2, 0)
    for criterion in (test, former):
        y = criterion["tables"]["y"]
        assert (y["fallback_helped"], y["fallback_harmed"], y["no_harm_on_fast_path"]) == (1, 1, True)
        assert criterion["pooled"]["fast_path_harmed"] == criterion["tables"]["x"]["fast_path_harmed"]
    assert test["all_methods"]["fast_path_immaterial"] == 3 and former["all_methods"]["fast_path_helped"] == 2
    assert test["all_methods"]["fast_path_harmed"] == 1
    assert report["production"] == joined["pooled"] and set(report["methods"]) == {"a", "b"}
    # what the membership test adds: one event of method b, harmful by it alone, on the fast path
    assert report["membership"]["pooled"] == {"events": 4, "tested": 4, "with_power": 4, "objected": 0, "added": 0,
                                              "added_on_fast_path": 0}
    assert report["membership"]["all_methods"] == {"events": 6, "tested": 6, "with_power": 6, "objected": 1,
                                                   "added": 1, "added_on_fast_path": 1}
    both = rejudged(pd.DataFrame([judged_event("a", "x", "pass", 2.0, 3 * t, t, objection=1, harmed_predictive=1)]),
                    audit)
    assert gate_confusion(both, "a", audit)["membership"]["pooled"]["added"] == 0  # harmful already


def test_the_committed_real_study_is_judged_by_the_audit_of_params_yaml():
    """study/real/results.csv's verdicts and confusion.json are what the code makes of its measurements."""
    import json

    from bayesunlearn.experiments.confusion import rejudged
    from bayesunlearn.io import settings
    from bench import real

    params = settings.load(REPO / "params.yaml")
    results = real.results(REPO / "study/real")
    again = rejudged(results, params.audit)
    assert (again["harmed"] == results["harmed"]).all() and (again["immaterial"] == results["immaterial"]).all()
    stored = json.loads((REPO / "study/real/confusion.json").read_text())
    assert stored == json.loads(json.dumps(gate_confusion(results, params.gate.method, params.audit)))


EVERY_DIFFERENCE = Audit(detection_size=0.05, detection_power=0.05)  # a test of power = size needs 0 nats


@pytest.fixture(scope="module")
def outcome(tf):
    """One random deletion on a small table: two methods and a fine-tuning baseline, judged by 2 retrains.
    The original's MAP converges: the gate would refuse every step from one that did not."""
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec
    from bayesunlearn.posteriors.fit import FitSettings

    table, _ = table_of(shops(120))
    setup = events.Setup({"newton": Divide(posterior="full_ggn", operator="divide"),
                          "diag": Divide(posterior="diag_ggn", operator="divide", repair="clip")},
                         Train(adam_steps=1500, polish="newton", polish_iterations=200, grad_tolerance=1e-6),
                         FitSettings(), 0, 2,
                         Gate(method="newton", posterior="full_ggn"), EVERY_DIFFERENCE, [20])
    model = RegressionModel(MLPSpec(table.x.shape[1], (10,)), prior_precision=1.0, noise_std=0.3)
    originals = events.fit_originals(model, table, setup)
    event = events.events(table, RealStudy(fractions=[0.1], seeds=[0], modes=["random"]))[0]
    return table, event, originals, setup, events.run_event(table, event, originals, setup)


def test_every_method_and_baseline_gets_one_row_judged_by_the_audit_and_the_gate(outcome):
    from bayesunlearn.model.likelihood import objective
    from bayesunlearn.unlearning.gate import gate
    from bayesunlearn.unlearning.methods import apply

    table, event, originals, setup, result = outcome
    by_method = {r["method"]: r for r in result.rows}
    assert list(by_method) == ["newton", "diag", "finetune_20"]
    for row in result.rows:
        n_judged = len(table.x_test) + row["n_forgotten"]
        objection = detection.membership_problem(row["n_forgotten"], row["told_apart_unlearned"],
                                                 row["told_apart_retrained"], setup.audit.privacy_alpha,
                                                 setup.audit.detection_size)
        evidence = (row["gain"], row["indistinguishability"], row["pred_kl_unlearned_retrained"] * n_judged,
                    row["pred_kl_original_retrained"] * n_judged)
        verdict, _ = setup.audit.verdict(*evidence, membership=objection)
        assert row["n_judged"] == n_judged and (row["harmed"], row["immaterial"]) == (verdict == "poor",
                                                                                      verdict == "immaterial")
        assert row["membership_objection"] == (objection is not None)
        assert row["harmed_predictive"] == (setup.audit.verdict(*evidence)[0] == "poor")
        assert row["gain"] == pytest.approx(row["pred_kl_unlearned_retrained"] / row["pred_kl_original_retrained"])
        assert row["n_forgotten"] == event.mask.sum() == 10
    assert by_method["finetune_20"]["gate"] == ""  # the baseline is not gated
    # the gate's claim in miniature: the full-GGN Newton step helps and passes; the diagonal one, which ignores
    # the correlations, harms, and the gate falls back because the retained records' fit got worse
    assert by_method["newton"]["gain"] < 0.5 and by_method["newton"]["gate"] == "pass"
    assert by_method["diag"]["harmed"] == 1 and by_method["diag"]["gate"] == "fallback"
    assert by_method["diag"]["gate_reasons"].startswith("retained records' NLL rose")
    # on 34 judged inputs, doing nothing is 0.15 nats from the retrain: the stated test calls the deletion immaterial
    from bayesunlearn.experiments.confusion import rejudged

    stated = rejudged(pd.DataFrame(result.rows), Audit(), membership=False)
    assert (stated["immaterial"] == 1).all() and (stated["harmed"] == 0).all()
    # the 2 shadows agree to rounding (near-convex fit): the per-record test then tells apart any posterior whose
    # losses differ from theirs at all, and objects to the Newton step that the predictive calls immaterial
    assert by_method["newton"]["shadow_loss_spread"] < 1e-6 and by_method["newton"]["membership_objection"] == 1
    assert rejudged(pd.DataFrame(result.rows), Audit())["harmed"].iloc[0] == 1
    s = result.splits
    unlearned, report = apply(setup.methods["newton"], originals["full_ggn"], s.x_forgotten, s.y_forgotten)
    _, grad = objective(originals["full_ggn"].model, originals["full_ggn"].mean, table.x, table.y)
    original_fit = Convergence(grad_norm=float(np.linalg.norm(grad)), grad_tolerance=setup.train.grad_tolerance)
    assert original_fit.converged  # the gate judges the step, not a MAP that stopped short
    expected = gate("newton", originals["full_ggn"], unlearned, report, s.x_retained, s.y_retained, s.x_forgotten,
                    s.y_forgotten, s.x_test, s.y_test, setup.gate, original_fit)
    assert by_method["newton"]["gate"] == expected.decision
    assert by_method["newton"]["residual_ratio"] == expected.residual_ratio
    # the fit is reported in the target's own units
    mean, _ = result.retrained["full_ggn"].predictive(table.x_test)
    rmse = float(np.sqrt(np.mean((mean - table.y_test) ** 2))) * table.y_std
    assert by_method["newton"]["test_rmse_retrained"] == pytest.approx(rmse, rel=1e-12)
    summary = events.summarise(pd.DataFrame(result.rows))
    assert set(summary["method"]) == {"newton", "diag", "finetune_20"} and (summary["events"] == 1).all()


def test_the_per_record_test_uses_the_event_retrains_as_shadows_and_one_more_retrain_as_the_reference(outcome):
    """The shares in each row are the ones the test computes by hand: shadows from seeds 0 and 1, the reference
    from seed 2, the unlearned posterior judged against the same shadows."""
    from bayesunlearn.experiments import privacy

    table, event, originals, setup, result = outcome
    s, model = result.splits, originals["full_ggn"].model
    fitted = privacy.shadows("full_ggn", model, s.x_retained, s.y_retained, range(3), setup.train, setup.fit)
    test = privacy.RecordTest.of(fitted[:2], s.x_forgotten, s.y_forgotten, setup.audit.privacy_alpha)
    rows = {r["method"]: r for r in result.rows}
    assert rows["newton"]["told_apart_retrained"] == test.share(fitted[2])
    assert rows["newton"]["told_apart_unlearned"] == test.share(result.unlearned["newton"])
    assert rows["newton"]["told_apart_original"] == test.share(originals["full_ggn"])
    assert rows["finetune_20"]["told_apart_unlearned"] == test.share(result.unlearned["finetune_20"])
    assert 0 <= rows["diag"]["told_apart_unlearned"] <= 1  # judged against diagonal shadows of its own kind
    # the positive control: the original, which saw the forgotten records, draws the objection
    assert rows["newton"]["membership_power"] == 1 and rows["newton"]["told_apart_original"] == 1.0


def test_timing_covers_every_method_the_baselines_and_a_cold_retrain(outcome):
    table, event, originals, setup, _ = outcome
    timing = events.time_event(table, event, originals, setup, repeats=1)
    assert set(timing) == {"newton", "diag", "finetune_20", "retrain"}
    assert all(t > 0 for t in timing.values())


def test_a_binary_table_falls_back_to_clusters_when_every_category_is_too_large():
    """The default table's only category, student, splits 29/71 %: above a 25 % segment, so a cluster leaves."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=200), "kind": rng.choice(["p", "q"], size=200),
                          "y": rng.integers(0, 2, size=200).astype(float)})
    train, test, scaling = datasets.prepare(frame, 0.2, 0, "t", target="binary")
    (x, y), (x_test, y_test) = datasets.arrays(train), datasets.arrays(test)
    table = events.Table("t", x, y, x_test, y_test, scaling.features, scaling.categories, 0.0, 1.0,
                         likelihood="bernoulli")
    event = events.segment(table, 0, clusters=8, max_share=0.25)
    assert event.segment.endswith(" of 8") and 0 < event.fraction <= 0.25
    assert table.likelihood == "bernoulli"


@pytest.fixture(scope="module")
def binary_outcome(tf):
    """One random deletion on a small binary table, fitted with the Bernoulli likelihood."""
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec
    from bayesunlearn.posteriors.fit import FitSettings

    frame = shops(150)
    frame["y"] = (frame["y"] + 0.5 * np.random.default_rng(4).normal(size=150) > 0.3).astype(float)
    train, test, scaling = datasets.prepare(frame, 0.2, 0, "b", target="binary")
    (x, y), (x_test, y_test) = datasets.arrays(train), datasets.arrays(test)
    table = events.Table("b", x, y, x_test, y_test, scaling.features, scaling.categories, 0.0, 1.0,
                         likelihood="bernoulli")
    setup = events.Setup({"newton": Divide(posterior="full_ggn", operator="divide")},
                         Train(adam_steps=1500, polish_iterations=50), FitSettings(), 0, 2,
                         Gate(method="newton", posterior="full_ggn"), EVERY_DIFFERENCE, [20])
    model = RegressionModel(MLPSpec(x.shape[1], (6,)), 1.0, 1.0, table.likelihood)
    originals = events.fit_originals(model, table, setup)
    event = events.events(table, RealStudy(fractions=[0.1], seeds=[0], modes=["random"]))[0]
    return table, events.run_event(table, event, originals, setup)


def test_a_binary_table_is_judged_by_accuracy_calibration_and_nll(binary_outcome, outcome):
    from bayesunlearn.numerics import metrics

    table, result = binary_outcome
    by_method = {r["method"]: r for r in result.rows}
    assert list(by_method) == ["newton", "finetune_20"]
    mean, var = result.retrained["full_ggn"].predictive(table.x_test)
    probability = 1.0 / (1.0 + np.exp(-metrics.probit_logit(mean, var)))
    row = by_method["newton"]
    assert row["test_accuracy_retrained"] == metrics.accuracy(table.y_test, probability)
    assert row["test_ece_retrained"] == metrics.expected_calibration_error(table.y_test, probability)
    assert row["test_nll_retrained"] == pytest.approx(float(np.mean(metrics.bernoulli_nll(table.y_test, mean, var))))
    assert "test_rmse_retrained" not in row and 0 <= row["mia_auc_unlearned"] <= 1
    assert row["gain"] == pytest.approx(row["pred_kl_unlearned_retrained"] / row["pred_kl_original_retrained"])
    both = events.summarise(pd.DataFrame(outcome[-1].rows + result.rows))
    assert list(both.columns)[-4:] == ["median_rmse_change", "median_mia_auc_excess", "median_accuracy_change",
                                       "median_ece_change"]  # a regression-only summary's columns come first
    assert both.loc[both.dataset == "b", "median_rmse_change"].isna().all()
    assert both.loc[both.dataset == "t", "median_accuracy_change"].isna().all()
