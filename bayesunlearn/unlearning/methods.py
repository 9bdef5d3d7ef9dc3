"""The method suite behind one entry point: apply a configured method (sections.Method) to a posterior.

A method is a posterior kind plus an operator and its options, e.g.
    {"posterior": "full_ggn", "operator": "divide", "mean_update": "damped"}
    {"posterior": "vi_full", "operator": "eubo", "threshold": 1e-33}
"""

from __future__ import annotations

import numpy as np

from bayesunlearn.errors import ConfigError
from bayesunlearn.io.sections import Divide, Method
from bayesunlearn.posteriors.posterior import GaussianPosterior
from bayesunlearn.unlearning.divide import forget, refine, refine_to_mode

Records = tuple[np.ndarray, np.ndarray]


def apply(method: Method, original: GaussianPosterior, x_f: np.ndarray, y_f: np.ndarray,
          retained: Records | None = None) -> tuple[GaussianPosterior | None, dict]:
    """Remove the records (x_f, y_f) with `method`; a failed operator returns None and says why in its report.

    `retained` (x_r, y_r) is read only by a method that refines on the retained records (`refine` > 0) or
    moves the mean by CG on their GGN (`mean_update: cg`)."""
    if isinstance(method, Divide):
        if method.reads_retained and retained is None:
            reader = f"refine: {method.refine}" if method.refine else f"mean_update: {method.mean_update}"
            raise ConfigError(f"{reader} reads the retained records, and none were given")
        posterior, report = forget(original, x_f, y_f, method, retained=retained)
        result = {"status": "ok", "reason": "", **report.to_dict()}
        if method.refine_tolerance is not None:
            posterior, refinement = refine_to_mode(posterior, *retained, method.refine, method.refine_tolerance)
            result |= refinement.report()
        elif method.refine:
            posterior, result["refine_steps"] = refine(posterior, *retained, method.refine)
        return posterior, result
    from bayesunlearn.unlearning.variational import unlearn_vi  # TensorFlow: only for the VI operators

    posterior, report = unlearn_vi(original, x_f, y_f, method)
    return posterior, report.to_dict()
