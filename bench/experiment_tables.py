"""`make bench` key `experiment_tables`: the main job's experiment on each shipped table, from a fresh workspace.

Per table of bench/presets.py: the repository's tracked files copied into a temporary folder with a git
repository of its own (DVC's cache empty, no dvc.lock, the table not yet prepared), then the docs' command,
`dvc exp run headline -S <preset>`, timed. Reported: wall seconds, the stages run, the machine's load
average before and after, and from the experiment's results the served path and method, the gate's verdict,
whether the original's MAP and the reference retrains reached `train.grad_tolerance` (their gradient norms),
and the test figures of the served posterior beside the retrain's: test RMSE and mean log-likelihood in the
target's original units for a real target (comparable to the UCI protocol's, `real.NAME.protocol`, given
beside them where the bench has it), test accuracy for a classifier.

    python -m bench.experiment_tables concrete penguins
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.dvc_timing import dvc, stages_run
from bench.latency import REPO
from bench.presets import PRESETS, command

GENERATED = ("metrics/", "study/", "plots/", "sweep/", "audit/")  # results, not inputs of a fresh workspace


def workspace(root: Path) -> Path:
    """The tracked files as a new git repository: results left out (but the audit verdict the gate reads)."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        result = name.startswith(GENERATED) and not name.endswith("dvc.yaml") and name != "metrics/audit.json"
        if (REPO / name).is_file() and not result and name != "dvc.lock":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    identity = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fresh workspace"]):
        subprocess.run(["git", *args], cwd=root, check=True, env={**os.environ, **identity})
    return root


def results(root: Path) -> dict:
    """What the experiment served and how it compares, read from its metrics."""
    headline = json.loads((root / "metrics/headline.json").read_text())
    train = json.loads((root / "metrics/train.json").read_text())
    retrain = json.loads((root / "metrics/retrain.json").read_text())
    scaling = json.loads((root / "data/prepared/scaling.json").read_text())
    evaluation = json.loads((root / f"metrics/evaluate/{headline['method']}.json").read_text())
    fits = retrain["fits"].values()
    out = {"served": headline["served"], "method": headline["method"], "gate": headline["gate"],
           "forgotten": headline["forgotten"], "n_train": scaling["n_train"], "n_test": scaling["n_test"],
           "n_params": train["n_params"], "gain": headline["gain"],
           "indistinguishability": headline["indistinguishability"],
           "original_converged": train["polish_converged"], "original_grad_norm": train["grad_norm"],
           "retrains_converged": all(f["polish_converged"] for f in fits),
           "retrain_grad_norms": [f["grad_norm"] for f in fits], "grad_tolerance": train["grad_tolerance"],
           "unconverged": headline["unconverged"]}
    timing = root / f"metrics/timing/{headline['method']}.json"  # evaluate's side-by-side wall times
    if timing.is_file():
        seconds = json.loads(timing.read_text())
        out |= {"unlearn_seconds": seconds["unlearn_seconds"], "retrain_seconds": seconds["retrain_seconds"]}
    if headline.get("test_rmse") is not None:  # a real target: standardised units → the target's own
        std = scaling["target_std"]
        for who in ("unlearned", "retrained"):
            out[f"test_rmse_{who}"] = evaluation[f"test_rmse_{who}"] * std
            out[f"test_log_likelihood_{who}"] = -evaluation[f"test_nll_{who}"] - math.log(std)
    else:
        for who in ("unlearned", "retrained"):
            out[f"test_accuracy_{who}"] = evaluation[f"test_accuracy_{who}"]
    return out


def run_table(name: str) -> dict:
    """One table's experiment in a fresh workspace."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        root = workspace(Path(tmp))
        load_before = os.getloadavg()
        start = time.perf_counter()
        try:
            _, stdout = dvc(root, *command(name).split()[1:])
        except RuntimeError as err:
            return {"command": command(name), "error": str(err), "seconds": time.perf_counter() - start,
                    "load_average_before": load_before, "load_average_after": os.getloadavg()}
        seconds = time.perf_counter() - start
        return {"command": command(name), "seconds": seconds, "stages": stages_run(stdout),
                "stages_run": len(stages_run(stdout)), "load_average_before": load_before,
                "load_average_after": os.getloadavg(), **results(root)}


def measure(tables: list[str], report: dict | None = None) -> dict:
    """Every table's run, one after the other (never two at once: each is timed), with the UCI protocol's
    figures beside a table's where `report` (the bench so far) or docs/bench.json has them."""
    from bayesunlearn.io.progress import phase, progress

    known = (report or {}).get("real") or json.loads((REPO / "docs/bench.json").read_text()).get("real", {})
    out = {}
    bar = progress(tables, desc="experiment per table", unit="table")
    for name in bar:
        phase(bar, name)
        out[name] = run_table(name)
        protocol = known.get(name, {}).get("protocol")
        if protocol:
            out[name]["uci_protocol"] = {key: protocol[key]["ggn_laplace"] for key in ("test_rmse",
                                                                                          "test_log_likelihood")}
    return out


def _test_cell(result: dict) -> str:
    """The served posterior's test figures and the retrain's, in the target's units."""
    if "test_accuracy_unlearned" in result:
        return f"accuracy {result['test_accuracy_unlearned']:.3f} ({result['test_accuracy_retrained']:.3f})"
    return (f"RMSE {result['test_rmse_unlearned']:.3g} ({result['test_rmse_retrained']:.3g}), "
            f"LL {result['test_log_likelihood_unlearned']:.3g} ({result['test_log_likelihood_retrained']:.3g})")


def block() -> str:
    """docs/methods.md's table of the last `make bench` run per table (docs/bench.json "experiment_tables")."""
    from bench.summary import BENCH, _table

    results = json.loads(BENCH.read_text()).get("experiment_tables")
    if not results:
        return "(no run recorded yet: `python -m bench.run --only experiments`)"
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append({"table": name, "seconds": f"{r['seconds']:.0f}", "served": "failed: " + r["error"][-80:]})
            continue
        uci = r.get("uci_protocol")
        norms = [r["original_grad_norm"], *r["retrain_grad_norms"]]
        at_tolerance = sum(norm <= r["grad_tolerance"] for norm in norms)
        rows.append({
            "table": name, "train × P": f"{r['n_train']:,} × {r['n_params']:,}",
            "seconds": f"{r['seconds']:.0f}", "stages": str(r["stages_run"]),
            "load": f"{r['load_average_before'][0]:.1f}",
            **({"unlearn / retrain s": f"{r['unlearn_seconds']:.3g} / {r['retrain_seconds']:.3g}"}
               if "unlearn_seconds" in r else {}),  # runs before the bench read them show no column
            "served": f"{r['served']} ({r['method']}), gate {r['gate']}",
            "MAPs at tolerance": f"{at_tolerance} of {len(norms)} (largest ‖∇L‖ {max(norms):.1e}, "
                                 f"tolerance {r['grad_tolerance']:.0e})",
            "test (retrained)": _test_cell(r),
            "UCI protocol": (f"RMSE {uci['test_rmse']['mean']:.3g} ± {uci['test_rmse']['se']:.2g}, "
                             f"LL {uci['test_log_likelihood']['mean']:.3g} ± {uci['test_log_likelihood']['se']:.2g}"
                             if uci else "—")})
    return _table(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="*", help=f"of {', '.join(PRESETS)} (default: every table)")
    args = parser.parse_args(argv)
    if unknown := [name for name in args.tables if name not in PRESETS]:
        parser.error(f"no preset for {unknown}; the tables are {list(PRESETS)}")
    print(json.dumps(measure(args.tables or list(PRESETS)), indent=2))


if __name__ == "__main__":
    main()
