"""Fine-tuning (bayesunlearn.unlearning.finetune) within a wall-time budget: the default method's
unlearning time, and ten times it, for as many steps as fit."""

from __future__ import annotations

from bayesunlearn.experiments.evaluation import compare, time_warm
from bayesunlearn.io.datasets import Splits
from bayesunlearn.io.sections import Train
from bayesunlearn.posteriors.posterior import GaussianPosterior
from bayesunlearn.unlearning import finetune as tuning

BUDGETS = {"same_time": 1.0, "ten_times": 10.0}  # multiples of the default method's unlearning time


def finetune(original: GaussianPosterior, splits: Splits, train: Train, steps: int) -> GaussianPosterior:
    return tuning.finetune(original, splits.x_retained, splits.y_retained, train, steps)


def seconds(original: GaussianPosterior, splits: Splits, train: Train, steps: int, repeats: int = 3) -> float:
    """Median warm wall time of `steps` fine-tuning steps."""
    return time_warm(lambda: finetune(original, splits, train, steps), repeats)


def steps_within(budget: float, original: GaussianPosterior, splits: Splits, train: Train) -> int:
    """The most steps whose measured time is within `budget` (at least one: a call costs what it costs)."""
    one, many = seconds(original, splits, train, 1), seconds(original, splits, train, 201)
    per_step = max((many - one) / 200, 1e-9)
    return max(1, int((budget - one) // per_step) + 1)


def baseline(original: GaussianPosterior, retrains: list[GaussianPosterior], splits: Splits, train: Train,
             unlearn_seconds: float) -> dict:
    """Gain, indistinguishability and time of fine-tuning within each budget."""
    out = {}
    for name, multiple in BUDGETS.items():
        steps = steps_within(multiple * unlearn_seconds, original, splits, train)
        result = compare(original, finetune(original, splits, train, steps), retrains, splits)
        out[name] = {"steps": steps, "seconds": seconds(original, splits, train, steps),
                     "budget_seconds": multiple * unlearn_seconds, "gain": result["gain"],
                     "indistinguishability": result["indistinguishability"],
                     "pred_kl_unlearned_retrained": result["pred_kl_unlearned_retrained"]}
    return out
