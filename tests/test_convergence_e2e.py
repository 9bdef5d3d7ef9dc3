"""End to end: an original MAP that stops short of `train.grad_tolerance` is said so, and never served from."""

from __future__ import annotations

import json

import pytest
from conftest import sh, tiny_repo

pytestmark = pytest.mark.slow

SHORT = "did not converge (|grad| "


def test_an_unconverged_original_is_reported_and_the_gate_falls_back(tmp_path):
    """Ten Adam steps and no polish: train says so in one line, the gate refuses the fast path for that reason,
    and the headline and the summary carry it; the retrains and serve's refit, as short, say so too."""
    from bayesunlearn.experiments.report import summary

    root = tiny_repo(tmp_path, {("train", "adam_steps"): 10, ("train", "polish_iterations"): 0})
    trained = sh("dvc", "repro", "train", cwd=root)
    warnings = [line for line in (trained.stdout + trained.stderr).splitlines() if SHORT in line]
    fit = json.loads((root / "metrics/train.json").read_text())
    assert fit["grad_norm"] > fit["grad_tolerance"] == 1e-6 and not fit["polish_converged"]
    problem = f"the original's MAP did not converge (|grad| {fit['grad_norm']:.3g} > tolerance 1e-06)"
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {problem}"), trained.stdout + trained.stderr

    rest = sh("dvc", "repro", "headline", cwd=root)
    said = [line for line in (rest.stdout + rest.stderr).splitlines() if SHORT in line]
    assert sum(line.startswith("warning: the retrain's MAP (seed ") for line in said) == 4  # retrain, headline
    assert sum(line.startswith("warning: the refit's MAP did not converge") for line in said) == 1  # serve
    gate = json.loads((root / "metrics/gate.json").read_text())
    assert gate["decision"] == "fallback" and problem in gate["reasons"]
    assert gate["original_grad_norm"] == fit["grad_norm"]
    provenance = json.loads((root / "models/served/provenance.json").read_text())
    assert provenance["path"] == "fallback" and problem in provenance["gate_reasons"]
    headline = json.loads((root / "metrics/headline.json").read_text())
    assert headline["served"] == "fallback" and headline["original_grad_norm"] == fit["grad_norm"]
    assert headline["unconverged"][0] == problem  # the retrains, also unpolished, follow as unreliable references
    assert len(headline["unconverged"]) == 3 and all(line.endswith("an unreliable reference")
                                                     for line in headline["unconverged"][1:])
    assert f"Not converged: {problem}; " in "\n".join(summary(root, with_timing=False))
