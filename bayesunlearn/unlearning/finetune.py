"""The baseline a practitioner tries first: fine-tune θ* on the retained records with the training optimiser.

Full-batch Adam at `train.learning_rate` (fresh moment estimates, as a new
fine-tuning run starts), from the original MAP, on the retained records only.
Fine-tuning gives a point estimate; to be judged by the same predictive KLs as
every method it keeps the original posterior's curvature, linearised at the
fine-tuned weights (a practitioner has no other).
"""

from __future__ import annotations

import numpy as np

from bayesunlearn.io.sections import Train
from bayesunlearn.model.training import fit_map
from bayesunlearn.posteriors.posterior import GaussianPosterior


def finetune(original: GaussianPosterior, x_r: np.ndarray, y_r: np.ndarray, train: Train,
             steps: int) -> GaussianPosterior:
    config = train.model_copy(update={"adam_steps": steps, "polish": "none"})
    theta, _ = fit_map(original.model, x_r, y_r, original.mean, config)
    return GaussianPosterior(original.model, theta, original.matrix, theta.copy(), original.kind)
