"""`make experiments`' wall times: filed by the results they belong to, found from each experiment's commit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bayesunlearn.experiments import timings
from flows import experiments


def git(root: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True, env=env).stdout.strip()


def commit_results(root: Path, source: str, gain: float) -> str:
    """A commit as an experiment leaves it: params, the headline, the served method's results."""
    (root / "params.yaml").write_text(f"prepare:\n  source: {source}\n")
    (root / "metrics/evaluate").mkdir(parents=True, exist_ok=True)
    (root / "metrics/headline.json").write_text(json.dumps({"method": "ggn_refined", "gain": gain}))
    (root / "metrics/evaluate/ggn_refined.json").write_text(json.dumps({"gain": gain}))
    git(root, "add", "params.yaml", "metrics/headline.json", "metrics/evaluate")
    git(root, "commit", "-qm", source)
    return git(root, "rev-parse", "--short", "HEAD")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    root = tmp_path / "ws"
    root.mkdir()
    git(root, "init", "-q")
    baseline = commit_results(root, "two_clusters", 0.5)
    timings.record(root / "metrics/evaluate/ggn_refined.json", {"unlearn_seconds": 0.01, "retrain_seconds": 2.0},
                   runs=root / timings.RUNS)
    experiment = commit_results(root, "concrete", 0.9)  # run elsewhere: nothing filed for its results
    git(root, "reset", "-q", "--hard", baseline)
    rows = [{"Experiment": None, "rev": "workspace"}, {"Experiment": None, "rev": baseline},
            {"Experiment": "bushy-exp", "rev": experiment}, {"Experiment": "queued-exp", "rev": "0000000"}]
    import dvc.api

    monkeypatch.setattr(dvc.api, "exp_show", lambda repo: rows)
    return root, baseline


def test_each_experiment_finds_the_times_filed_under_its_own_results(workspace):
    root, baseline = workspace
    found = {t.experiment: t for t in experiments.experiments(root)}
    assert found["workspace"] == experiments.Times("workspace", "two_clusters", "ggn_refined", 0.01, 2.0)
    assert found[baseline] == experiments.Times(baseline, "two_clusters", "ggn_refined", 0.01, 2.0)
    assert found["bushy-exp"] == experiments.Times("bushy-exp", "concrete", "ggn_refined", None, None)
    assert found["queued-exp"] == experiments.Times("queued-exp", None, None, None, None)


def test_other_results_never_borrow_a_time(workspace):
    root, _ = workspace
    (root / "metrics/evaluate/ggn_refined.json").write_text(json.dumps({"gain": 0.51}))  # a rerun, not yet timed
    workspace_row = experiments.experiments(root)[0]
    assert workspace_row.unlearn_seconds is None and workspace_row.retrain_seconds is None


def test_the_table_shows_a_dash_where_nothing_was_filed(workspace, capsys):
    root, _ = workspace
    assert experiments.main(["--repo", str(root)]) == 0
    out = capsys.readouterr().out
    assert "bushy-exp" in out and "concrete" in out and "0.01" in out and "—" in out


def test_a_folder_without_experiments_is_one_clear_line(tmp_path, capsys):
    assert experiments.main(["--repo", str(tmp_path)]) == 2
    assert capsys.readouterr().out.startswith(f"error: {tmp_path}: DVC cannot list experiments here")
