"""DVC stage `serve`: the served posterior, models/served/, with its provenance.

Fast path: the gate passed, so the unlearned posterior is served as it is.
Fallback: the gate failed, so a posterior is refitted from scratch on the
retained data (same kind, the original's initialisation seed) and served
instead. The reference retrains of the audit path are never needed here.
The output persists between runs and is replaced atomically, so a failure
anywhere leaves the previously served posterior in place.
"""

import json
import shutil

from bayesunlearn import atomic, store
from bayesunlearn.config import train_config

from .common import METRICS, MODELS, deterministic_tensorflow, fit_settings, load_splits, method, params, run

SERVED = MODELS / "served"


def main() -> None:
    decision = json.loads((METRICS / "gate.json").read_text())
    chosen = method(decision["method"])
    unlearned_path = MODELS / "unlearned" / f"{chosen.name}.npz"
    if decision["decision"] == "pass":
        atomic.write_with(SERVED / "posterior.npz", lambda tmp: shutil.copyfile(unlearned_path, tmp), suffix=".npz")
        provenance = {"path": "fast", "source": str(unlearned_path)}
    else:
        deterministic_tensorflow()
        from bayesunlearn.methods import fit_from_scratch
        from bayesunlearn.posterior import GaussianPosterior

        model = GaussianPosterior.load(MODELS / "original" / f"{chosen.posterior}.npz").model
        s = load_splits()
        posterior, info = fit_from_scratch(chosen.posterior, model, s.x_retained, s.y_retained,
                                           int(params("train")["seed"]), train_config(params("train")),
                                           fit_settings())
        posterior.save(SERVED / "posterior.npz")
        provenance = {"path": "fallback", "source": "refit from scratch on the retained data",
                      "refit_grad_norm": info["grad_norm"]}
    meta, _ = store.load_arrays(SERVED / "posterior.npz")
    atomic.write_json(SERVED / "provenance.json", {**provenance, "method": chosen.name,
                                                   "posterior": chosen.posterior, "gate": decision["decision"],
                                                   "gate_reasons": decision["reasons"]})
    print(f"serving the {provenance['path']} posterior ({chosen.name})")


if __name__ == "__main__":
    run(main)
