"""bench/membership.py's tables: what the per-record test adds, and the study's cost stated as extrapolated."""

from bench.membership import block, cost_block


def test_the_table_counts_the_production_methods_events_and_the_cost_says_it_is_extrapolated():
    rows = [{"method": "m", "harmed_predictive": h} for h in (0, 1, 0)] + [{"method": "finetune_5",
                                                                             "harmed_predictive": 1}]
    counts = {"events": 3, "tested": 3, "with_power": 2, "objected": 2, "added": 1, "added_on_fast_path": 1}
    confusion = {"fast_path_helped": 1, "fast_path_harmed": 1, "fast_path_immaterial": 0}
    report = {"method": "m", "tables": {"t": {"events": 3, "median_gain": 0.25, "membership": counts,
                                              "confusion": confusion, "median_shadow_loss_spread": 1e-9,
                                              "retrain_seconds": 4.0, "rows": rows}}}
    line = next(r for r in block(report).splitlines() if r.startswith("| t "))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:9] == ["t", "3", "0.25", "2", "1", "2", "2", "1", "1"]  # the baseline's harm is not counted
    cost = {"polish": "newton", "polish_iterations": 500, "fits_per_event": 4, "retrains_hours_extrapolated": 5.0,
            "tables": {"t": {"n_train": 824, "n_params": 501, "retrain_seconds": 300.0, "grad_norm": 1e-9,
                             "events": 15, "retrains_hours_extrapolated": 5.0}}}
    text = cost_block(cost)
    assert "824 × 501" in text and "about 5.0 hours" in text and "extrapolated from one measured retrain" in text


def test_the_prose_around_the_membership_table_holds():
    """docs/methods.md's reading of docs/bench.json "membership_events"."""
    import json

    from conftest import REPO

    report = json.loads((REPO / "docs/bench.json").read_text())["membership_events"]
    method = report["method"]
    penguins, default = (report["tables"][t] for t in ("penguins", "default"))
    mine = [r for r in penguins["rows"] if r["method"] == method]
    assert max(r["gain"] for r in mine) < 0.01 and penguins["membership"]["objected"] == 0
    assert penguins["membership"]["with_power"] == penguins["events"] == 15
    mine = [r for r in default["rows"] if r["method"] == method]
    objected = [r for r in mine if r["membership_objection"]]
    assert len(objected) == 12 and all(r["gate"] == "pass" and not r["harmed_predictive"] for r in objected)
    assert round(min(r["gain"] for r in objected), 2) == 0.36 and round(max(r["gain"] for r in objected), 2) == 0.95
    assert sum(r["shadow_loss_spread"] < 1e-8 for r in objected) == 10
    assert 0.435 <= min(r["told_apart_unlearned"] for r in objected)
    assert max(r["told_apart_retrained"] for r in objected) <= 0.33
    assert all(r["gain"] < 1e-9 for r in mine if r not in objected)  # refining reached the retrains: no objection
