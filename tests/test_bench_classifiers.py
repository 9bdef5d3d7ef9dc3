"""bench/classifiers.py's verdict: medians over the events, and `to_mode` judged against fine-tuning in its time."""

from bench.classifiers import _summary, block


def rows(to_mode: list[float], finetune: list[float]) -> list[dict]:
    """Events with these gains; every candidate took 0.1 s and 10 passes."""
    def cell(gain: float) -> dict:
        return {"gain": gain, "indistinguishability": 1.0, "seconds": 0.1, "passes": 10}

    return [{"fraction": 0.1, "seed": i, "served": cell(0.5), "to_mode": {**cell(a), "refine_converged": i > 0},
             "finetune_same_time": cell(b)} for i, (a, b) in enumerate(zip(to_mode, finetune))]


def test_the_median_decides_not_a_single_event():
    summary = _summary(rows([0.0, 0.0, 0.9], [0.1, 0.2, 0.05]), retrain_seconds=2.0)
    assert summary["meets"] is True  # medians 0.0 against 0.1, though fine-tuning wins the third event
    assert summary["medians"]["to_mode"]["median_gain"] == 0.0
    assert summary["medians"]["to_mode"]["converged"] == 2
    assert summary["medians"]["served"]["median_seconds_over_retrain"] == 0.05


def test_a_method_further_than_fine_tuning_does_not_meet_and_the_docs_say_so():
    events = rows([0.3, 0.3, 0.3], [0.1, 0.2, 0.05])
    summary = _summary(events, retrain_seconds=2.0)
    assert summary["meets"] is False
    report = {"method": "ggn_refined", "refine_tolerance": 1e-6,
              "tables": {"t": {"n_train": 10, "n_params": 5, "retrain_seconds": 2.0, "events": events, **summary}}}
    assert "further from the retrains than fine-tuning" in block(report)
