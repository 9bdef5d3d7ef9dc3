"""DVC stage `serve`: the served posterior, models/served/, with its provenance.

Fast path: the gate passed, so the unlearned posterior is served as it is.
Fallback: the gate failed, so a posterior is refitted from scratch on the
retained data (same kind, the original's initialisation seed) and served
instead. The reference retrains of the audit path are never needed here.
The output persists between runs and is replaced atomically, so a failure
anywhere leaves the previously served posterior in place.
"""

import shutil
import sys

from bayesunlearn.io import atomic, contracts

from .common import MODELS, load_splits, run, settings

SERVED = MODELS / "served"


def main() -> None:
    decision = contracts.GateReport.read(contracts.GATE_REPORT)
    chosen = settings().method(decision.method)
    unlearned_path = MODELS / "unlearned" / f"{decision.method}.npz"
    if decision.decision == "pass":
        atomic.write_with(SERVED / "posterior.npz", lambda tmp: shutil.copyfile(unlearned_path, tmp), suffix=".npz")
        path, source, grad_norm = "fast", str(unlearned_path), None
    else:
        from bayesunlearn.posteriors.fit import FitSettings, fit_from_scratch
        from bayesunlearn.posteriors.posterior import GaussianPosterior

        model = GaussianPosterior.load(MODELS / "original" / f"{chosen.posterior}.npz").model
        s = load_splits()
        posterior, info = fit_from_scratch(chosen.posterior, model, s.x_retained, s.y_retained,
                                           settings().train.seed, settings().train, FitSettings.of(settings()))
        posterior.save(SERVED / "posterior.npz")
        path, source, grad_norm = "fallback", "refit from scratch on the retained data", info["grad_norm"]
        if problem := contracts.MapFit(**info).problem("the refit's MAP"):
            print(f"warning: {problem}", file=sys.stderr)
    contracts.Provenance(path=path, source=source, method=decision.method, posterior=chosen.posterior,
                         gate=decision.decision, gate_reasons=decision.reasons,
                         refit_grad_norm=grad_norm).write(contracts.PROVENANCE)
    print(f"serving the {path} posterior ({decision.method})")


if __name__ == "__main__":
    run(main)
