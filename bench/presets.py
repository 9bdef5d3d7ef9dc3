"""Per-table presets: the settings an experiment of the main job on each shipped table runs with.

One definition: the docs' commands (`python -m bench.docs`), the bench's per-table runs
(bench/experiment_tables.py) and the tests read these. A preset is a set of `-S` overrides of
params.yaml, the same keys in each. The network width, prior precision and noise of each table are
chosen by the full-GGN Laplace evidence on the table's training part (`python -m bench.choose_presets`,
which prints the values recorded here), also for the generated data, whose default params.yaml predates them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The keys every preset sets: `dvc exp run -S` leaves its values in params.yaml, so a key one preset left out
# would carry the previous experiment's value into the next.
KEYS = ("prepare.source", "prepare.max_records", "split.requests_dir", "model.likelihood", "model.hidden",
        "model.prior_precision", "model.noise_std", "train.adam_steps", "train.grad_tolerance",
        "evaluate.timing_repeats")


def preset(source: str, likelihood: str, hidden: int, prior_precision: float, noise_std: float = 0.1,
           max_records: int | None = None, requests: str | None = None, adam_steps: int = 5000,
           grad_tolerance: float = 1e-6) -> dict[str, Any]:
    """One table's settings. The width, α and σ (a classifier has none: the default's, unused) are the evidence's
    choice; 5,000 Adam steps find the basin the Newton polish converges from (the defaults' 20,000 made the
    original and every retrain the bulk of a run); the default tolerance unless stated; one timed repeat of
    unlearning and of a retrain."""
    values = (source, max_records, requests or f"data/examples/{source}", likelihood, [hidden], prior_precision,
              noise_std, adam_steps, grad_tolerance, 1)
    return dict(zip(KEYS, values))


# Width, α and σ as `python -m bench.choose_presets` prints them (2 significant figures).
PRESETS: dict[str, dict[str, Any]] = {
    "two_clusters": preset("two_clusters", "gaussian", 50, 0.32, 0.12, requests="data/requests", adam_steps=20000),
    # its retrains stall at |∇L| ≈ 2e-6 at a converged fit's objective to all 17 digits, where a step's decrease
    # is below the objective's float64 resolution (docs/methods.md, "Settings per table")
    "diabetes": preset("diabetes", "gaussian", 3, 5.8, 0.68, grad_tolerance=1e-5),
    "concrete": preset("concrete", "gaussian", 10, 2.1, 0.28),
    "penguins": preset("penguins", "categorical", 50, 0.7),
    # 10,000 customers: a seeded 2,000 as for diamonds (the exact Hessian of the polish on 8,000 records took
    # minutes per fit)
    "default": preset("default", "bernoulli", 10, 0.46, max_records=2000, requests="data/examples/default_sample"),
    # 53,940 stones: a seeded 2,000 of the training part and of the test part, and a request naming them
    # (widths compared: 10 and 3; a 1,401-parameter polish on 2,000 records does not fit the budget)
    "diamonds": preset("diamonds", "gaussian", 3, 4.2, 0.14, max_records=2000,
                       requests="data/examples/diamonds_sample"),
}


def render(value: Any) -> str:
    """A value as `dvc exp run -S` takes it (YAML): lists without spaces, so the shell passes one word."""
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def command(name: str) -> str:
    """The experiment of the main job on this table, as a user types it."""
    return " ".join(["dvc exp run headline", *(f"-S {key}={render(value)}" for key, value in PRESETS[name].items())])


def settings_of(name: str, params: Path = Path("params.yaml")):
    """params.yaml with the preset applied, validated as `dvc exp run -S` would leave it."""
    from bayesunlearn.io import settings

    raw = settings._yaml_load(params.read_text())
    for dotted, value in PRESETS[name].items():
        *parents, last = dotted.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return settings.parse(raw, f"{params.name} with the {name} preset")


def block() -> str:
    """The docs' commands, one per table (docs/methods.md)."""
    return "```bash\n" + "\n".join(command(name) for name in PRESETS) + "\n```"
