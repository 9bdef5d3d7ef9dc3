"""The method suite behind one entry point: apply a configured method (sections.Method) to a posterior.

A method is a posterior kind plus an operator and its options, e.g.
    {"posterior": "full_ggn", "operator": "divide", "mean_update": "damped"}
    {"posterior": "vi_full", "operator": "eubo", "threshold": 1e-33}
"""

from __future__ import annotations

import numpy as np

from bayesunlearn.io.sections import Divide, Method
from bayesunlearn.posteriors.posterior import GaussianPosterior
from bayesunlearn.unlearning.divide import forget


def apply(method: Method, original: GaussianPosterior, x_f: np.ndarray, y_f: np.ndarray
          ) -> tuple[GaussianPosterior | None, dict]:
    """Remove the records (x_f, y_f) with `method`; a failed operator returns None and says why in its report."""
    if isinstance(method, Divide):
        posterior, report = forget(original, x_f, y_f, method)
        return posterior, {"status": "ok", "reason": "", **report.to_dict()}
    from bayesunlearn.unlearning.variational import unlearn_vi  # TensorFlow: only for the VI operators

    posterior, report = unlearn_vi(original, x_f, y_f, method)
    return posterior, report.to_dict()
