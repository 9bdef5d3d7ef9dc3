"""The DVC `params` stage: a direct `dvc repro` with a bad params.yaml stops there and loses nothing."""

from __future__ import annotations

import pytest
import yaml
from conftest import sh, tiny_repo

pytestmark = pytest.mark.slow


def set_param(root, section: str, key: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_bad_value_stops_dvc_repro_at_the_params_stage_before_prepare_deletes_its_data(tmp_path):
    root = tiny_repo(tmp_path)
    prepared = {p.name: p.read_bytes() for p in (root / "data/prepared").iterdir()}
    stamp = (root / "metrics/params_check.json").read_bytes()

    set_param(root, "prepare", "test_fraction", 1.5)
    result = sh("dvc", "repro", "split", cwd=root, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "failed to reproduce 'params'" in output, output[-2000:]
    assert "prepare.test_fraction: Input should be less than 1" in output
    assert "Running stage 'prepare'" not in output
    assert {p.name: p.read_bytes() for p in (root / "data/prepared").iterdir()} == prepared
    assert (root / "metrics/params_check.json").read_bytes() == stamp  # persisted: a failed check deletes nothing

    # a valid change reruns the check and nothing else: its output is constant
    set_param(root, "prepare", "test_fraction", 0.2)
    set_param(root, "study", "seeds", [0, 1])
    result = sh("dvc", "repro", "prepare", cwd=root)
    assert "Running stage 'params'" in result.stdout and "Running stage 'prepare'" not in result.stdout, result.stdout
    assert sh("dvc", "status", "prepare", cwd=root).stdout.strip().startswith("Data and pipelines are up to date")
