"""DVC stage `real_study`: the unlearning study and the gate judged on the packaged real tables.

For every table of `real_study.datasets` (a binary table is fitted with the Bernoulli
likelihood, a multiclass one with the categorical, the others with the Gaussian):
random deletions of every fraction and seed, and one segment per seed (a category,
or a k-means cluster), every method and the fine-tuning baselines, each judged
against `retrain.seeds` retrains from scratch and by the gate. Writes under study/real/:
- results.csv (one row per event and method, with the per-record membership test's shares
  and objection), summary.csv (medians per method and mode);
- confusion.json: the gate's decisions against the audit's truth, and its targets, per
  table and pooled, by the audit's likelihood-ratio test with and without the membership
  test and by the former 1-nat threshold, and what the membership test adds;
- gain.png (every event's gain by method, marked by the gate's decision) and
  predicted_vs_actual.png (the production method on the first segment event; a
  reliability diagram for a classifier);
- timing.json: wall times of each method, the baselines and a cold retrain on the
  first random event of at most 10 % (varies from run to run; not bit-identical).
"""

from pathlib import Path

from bayesunlearn.io.progress import progress

from .common import run, settings

OUT = Path("study/real")


def main() -> None:
    import pandas as pd

    from bayesunlearn.experiments import event_plots, events
    from bayesunlearn.experiments.confusion import SMALL, gate_confusion
    from bayesunlearn.io import atomic, store
    from bayesunlearn.posteriors.fit import FitSettings

    s = settings()
    p = s.real_study
    setup = events.Setup(s.chosen_methods(p.methods), s.train, FitSettings.of(s), s.train.seed, s.retrain.seeds,
                         s.gate, s.audit, p.finetune_steps)
    rows, timing, cases = [], {}, {}
    plotted_mode = "segment" if "segment" in p.modes else "random"
    for name in p.datasets:
        table = events.load_table(name, s.prepare, p.max_train_records)
        model = table.model(s.model)
        originals = events.fit_originals(model, table, setup)
        for event in progress(events.events(table, p), desc=f"real study: {name}", unit="event"):
            outcome = events.run_event(table, event, originals, setup)
            rows += outcome.rows
            if event.mode == plotted_mode and cases.get(name) is None:
                cases[name] = _case(table, event, originals, outcome, s.gate.method, setup)
            if name not in timing and event.mode == "random" and event.fraction <= SMALL:
                timing[name] = events.time_event(table, event, originals, setup, s.evaluate.timing_repeats)
    results = pd.DataFrame(rows)
    store.save_table(OUT / "results.csv", results)
    store.save_table(OUT / "summary.csv", events.summarise(results))
    atomic.write_json(OUT / "confusion.json", gate_confusion(results, s.gate.method, s.audit))
    atomic.write_json(OUT / "timing.json", timing)
    event_plots.save_gain_by_method(OUT / "gain.png", results, s.audit.max_gain)
    event_plots.save_predicted_vs_actual(OUT / "predicted_vs_actual.png", [c for c in cases.values() if c])


def _case(table, event, originals, outcome, method: str, setup):
    """The production method beside the original and the reference retrain (None when it was not run or failed)."""
    from bayesunlearn.experiments.event_plots import Case

    unlearned = outcome.unlearned.get(method)
    if unlearned is None:
        return None
    kind = setup.methods[method].posterior
    what = f"segment {event.segment}" if event.segment else f"{event.fraction:.0%} at random"
    return Case(f"{table.name}, {method}, {what} ({event.mask.sum()} records)",
                {"original": originals[kind], "unlearned": unlearned, "retrained": outcome.retrained[kind]},
                outcome.splits, table.y_mean, table.y_std)


if __name__ == "__main__":
    run(main)
