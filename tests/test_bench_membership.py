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
