"""The per-table presets (bench/presets.py): valid settings, the docs' commands, their example requests."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import REPO

from bayesunlearn.io import datasets, requests, settings
from bench import presets

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_each_preset_through_dvc_exp_run_set_param_gives_valid_settings_for_its_table(name, tmp_path):
    """The command's `-S` words go through DVC's own override parser (as `dvc exp run` applies them) and give
    the preset's settings, valid, on the table the preset names."""
    from dvc.utils.hydra import apply_overrides

    copy = tmp_path / "params.yaml"
    shutil.copyfile(REPO / "params.yaml", copy)
    words = presets.command(name).split()
    overrides = [words[i + 1] for i, word in enumerate(words) if word == "-S"]
    assert len(overrides) == len(presets.PRESETS[name])
    apply_overrides(copy, overrides)
    applied = settings.load(copy)
    assert applied == presets.settings_of(name, REPO / "params.yaml")
    assert applied.prepare.source == name
    assert (REPO / applied.split.requests_dir).is_dir()


def test_every_preset_sets_the_same_keys_so_no_value_carries_over_from_the_last_experiment():
    """`dvc exp run -S` leaves its values in params.yaml: a key one preset sets and another left out would carry
    the first table's value into the second's experiment."""
    keys = {tuple(overrides) for overrides in presets.PRESETS.values()}
    assert len(keys) == 1 and "prepare.source" in next(iter(keys))


def test_every_experiment_on_a_shipped_table_in_the_docs_is_that_tables_preset():
    """A `dvc exp run headline` the docs give with `prepare.source=NAME` is NAME's preset command, word for word
    (the generated block in docs/methods.md and any command quoted in prose)."""
    found = {}
    for path in DOCS:
        text = re.sub(r"\s+", " ", path.read_text())
        for command in re.findall(r"dvc exp run headline(?: -S [^ `]+)+", text):
            source = re.search(r"-S prepare\.source=(\w+)", command)
            if source and source.group(1) in presets.PRESETS:
                found.setdefault(source.group(1), set()).add(command)
    assert set(found) == set(presets.PRESETS), "a table's preset command is missing from the docs"
    wrong = {name: commands - {presets.command(name)} for name, commands in found.items()
             if commands - {presets.command(name)}}
    assert not wrong, wrong


@pytest.mark.parametrize("name", [n for n, p in presets.PRESETS.items() if p.get("prepare.max_records")])
def test_a_subsampled_presets_example_request_names_training_records_of_its_subsample(name):
    s = presets.settings_of(name, REPO / "params.yaml")
    p = s.prepare
    frame, origin = datasets.load_source(p, REPO)
    train, test, _ = datasets.prepare(frame, p.test_fraction, p.seed, origin, p.target_kind, datasets.class_labels(p))
    train, test = (datasets.subsample(part, p.max_records, p.seed) for part in (train, test))
    assert len(train) == len(test) == p.max_records
    known = requests.KnownIds(frozenset(train.record_id), frozenset(test.record_id))
    assert len(requests.forgotten_ids(requests.load_requests(REPO / s.split.requests_dir), known)) == 8


def test_a_subsample_is_seeded_keeps_the_row_order_and_leaves_a_small_part_alone():
    import pandas as pd

    part = pd.DataFrame({"record_id": [f"r{i}" for i in range(50)], "y": range(50)})
    drawn = datasets.subsample(part, 10, seed=3)
    assert len(drawn) == 10 and list(drawn.y) == sorted(drawn.y) and list(drawn.index) == list(range(10))
    assert drawn.equals(datasets.subsample(part, 10, seed=3)) and not drawn.equals(datasets.subsample(part, 10, 4))
    assert datasets.subsample(part, 50, seed=3) is part and datasets.subsample(part, None, seed=3) is part


def test_the_bench_reads_an_experiments_results_in_the_targets_units(tmp_path):
    """`make bench`'s experiment_tables: RMSE times the target's spread, log-likelihood shifted by its log, and
    convergence counted over the original and every retrain."""
    import json
    import math

    from bench import experiment_tables, run

    files = {
        "metrics/headline.json": {"method": "m", "served": "fast", "gate": "pass", "forgotten": 8, "gain": 0.5,
                                  "indistinguishability": 1.0, "test_rmse": 0.5, "unconverged": []},
        "metrics/train.json": {"n_params": 37, "polish_converged": True, "grad_norm": 1e-7, "grad_tolerance": 1e-6},
        "metrics/retrain.json": {"fits": {"seed_0": {"polish_converged": False, "grad_norm": 2e-6}}},
        "data/prepared/scaling.json": {"n_train": 10, "n_test": 5, "target_std": 4.0},
        "metrics/evaluate/m.json": {"test_rmse_unlearned": 0.5, "test_rmse_retrained": 0.25,
                                    "test_nll_unlearned": 1.0, "test_nll_retrained": 2.0},
    }
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(json.dumps(content))
    result = experiment_tables.results(tmp_path)
    assert result["test_rmse_unlearned"] == 2.0 and result["test_rmse_retrained"] == 1.0
    assert result["test_log_likelihood_unlearned"] == pytest.approx(-1.0 - math.log(4.0))
    assert result["original_converged"] and not result["retrains_converged"]
    assert run.PARTS.index("real") < run.PARTS.index("experiments")  # the UCI figures exist when it runs
