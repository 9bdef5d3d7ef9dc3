"""Readable results of a run: `python -m bayesunlearn.experiments.report`.

The ten-second summary of the main job (what was forgotten, which method
served, the gate's decision, speed, closeness to retraining against the noise
floor, where the plots are), from metrics/headline.json, the gate report and
the timing; and the markdown tables of every method and of the study that the
docs quote (bench/docs.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bayesunlearn.errors import UserError
from bayesunlearn.io import contracts, settings

METHODS_TABLE = Path("metrics/methods.csv")
STUDY_SUMMARY = Path("study/summary.csv")
TIMING = Path("metrics/timing")


def markdown(frame: pd.DataFrame) -> str:
    return tabulate(frame, headers="keys", tablefmt="github", floatfmt=".3g", showindex=False)


def methods_block(path: Path = METHODS_TABLE) -> str:
    table = pd.read_csv(path)
    cols = ["method", "posterior", "operator", "failed", "gain", "indistinguishability",
            "pred_kl_unlearned_retrained", "pred_kl_original_retrained", "pred_kl_retrain_floor"]
    return markdown(table[cols])


def study_block(path: Path = STUDY_SUMMARY) -> str:
    summary = pd.read_csv(path)
    gain = summary.pivot(index="method", columns=["mode", "fraction"], values="median_gain")
    gain.columns = [f"{mode} {fraction:.0%}" for mode, fraction in gain.columns]
    failed = summary.groupby("method")[["failed", "runs"]].sum()
    gain["failed runs"] = (failed["failed"].astype(int).astype(str) + "/" + failed["runs"].astype(int).astype(str))
    return markdown(gain.reset_index())


def summary(root: Path = Path("."), with_timing: bool = True) -> list[str]:
    """The main job in a few lines a person reads in ten seconds (`with_timing`: with the untracked timings)."""
    s = settings.load(root / settings.PARAMS)
    head = contracts.Headline.read(root / contracts.HEADLINE)
    gate = contracts.GateReport.read(root / contracts.GATE_REPORT)
    ids = ", ".join(head.requests[:5]) + (" …" if len(head.requests) > 5 else "")
    method = s.methods[head.method]
    verdict = "passed" if gate.passed else "failed, so the posterior was refitted from scratch"
    lines = [f"Forgot {head.forgotten} of {head.forgotten + head.retained} training records "
             f"({len(head.requests)} request{'s' if len(head.requests) != 1 else ''}: {ids or 'none'}).",
             f"Served: the {head.served} path, {head.method} ({method.posterior}, {method.operator}); the gate "
             f"{verdict} (retained records' NLL change {gate.retained_nll_change:.2g} ≤ "
             f"{s.gate.max_retained_nll_change:g} nats, membership "
             f"AUC {'n/a' if gate.mia_auc is None else format(gate.mia_auc, '.2f')} ≤ {s.gate.max_mia_auc:g})"
             + ("" if gate.passed else f": {'; '.join(gate.reasons)}") + "."]
    if head.unconverged:  # only then: a run whose MAPs all converged keeps the summary as it was
        lines.append(f"Not converged: {'; '.join(head.unconverged)}.")
    timing_file = root / TIMING / f"{head.method}.json"
    if with_timing and timing_file.exists():
        timing = json.loads(timing_file.read_text())
        lines.append(f"Speed: unlearning {timing['unlearn_seconds']:.3g} s against a cold retrain "
                     f"{timing['retrain_seconds']:.3g} s: {timing['speedup']:,.0f}× faster.")
    lines += [f"Against retraining: gain {head.gain:.3g} (predictive KL to a retrain, relative to doing nothing; "
              f"below 1 = unlearning helped); indistinguishability {head.indistinguishability:.3g} (relative to the "
              f"spread between two retrains; about 1 or less = within the noise floor).",
              (f"Test RMSE {head.test_rmse:.4g} (retrained {head.test_rmse_retrained:.4g})"
               if head.test_rmse is not None else
               f"Test accuracy {head.test_accuracy:.4g} (retrained {head.test_accuracy_retrained:.4g}), calibration "
               f"error {head.test_ece:.3g} (retrained {head.test_ece_retrained:.3g})")
              + f"; membership AUC {head.mia_auc:.2f} (retrained {head.mia_auc_retrained:.2f}).",
              f"Plots: plots/predictive/{head.method}.png (and `dvc plots show`); details: "
              f"metrics/evaluate/{head.method}.json; every method: `make study`."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bayesunlearn.experiments.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    try:
        print("\n".join(summary()))
    except UserError as err:
        print(f"error: {err}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
