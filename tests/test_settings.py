"""params.yaml is hostile input too: every problem is a ConfigError naming the key, nothing else escapes."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml
from conftest import REPO
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st

from bayesunlearn.errors import ConfigError
from bayesunlearn.io import settings

RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def changed(path: str, value) -> dict:
    raw = copy.deepcopy(RAW)
    *parents, last = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[last] = value
    return raw


@pytest.mark.parametrize("path, value, message", [
    ("split.requests_dir", ".", "must be a relative path"),
    ("split.requests_dir", "inbox", "inside inbox/"),
    ("split.requests_dir", "inbox/rejected", "inside inbox/"),
    ("split.requests_dir", "audit", "inside audit/"),
    ("split.requests_dir", ".git/hooks", "inside .git/"),
    ("split.requests_dir", "data/req\x00x", "non-printable"),
    ("split.requests_dir", "data//requests", "must be a relative path"),
    ("split.requests_dir", "../elsewhere", "must be a relative path"),
    ("split.requests_dir", "requests", "a folder of its own under data/"),
    ("split.requests_dir", "data/split", "a folder of its own under data/"),
    ("split.requests_dir", "data", "a folder of its own under data/"),
    ("prepare.csv.path", "/etc/passwd", "must be a relative path"),
    ("schedule.intake_cron", "99 * * * *", "is not a cron expression"),
    ("schedule.intake_cron", "a b c d e", "is not a cron expression"),
    ("schedule.audit_cron", "0 3 * * * *", "is not a cron expression"),
    ("model.hidden", [1_000_000_000_000], "layer widths from 1 to 10,000"),
    ("model.hidden", [0], "layer widths from 1 to 10,000"),
    ("ledger.retention_days", 10_000_000, "less than or equal to 36500"),
    ("methods.ggn_refined.refine", -1, "greater than or equal to 0"),
    ("methods.ggn_refined.refine", 10**9, "less than or equal to 1000"),  # a billion gradient passes: refused
    ("methods.ggn_newton.refine_tolerance", 1.0e-6, "set refine to at least 1"),  # a tolerance without a budget
    ("methods.vi_mf_divide.refine", 2, "refine: refining takes Newton steps from a MAP"),  # VI: not at a MAP
    ("methods.vi_mf_divide.mean_update", "cg", "mean_update: cg takes the GGN's Newton step at a MAP"),
    ("methods.ggn_newton.mean_update", "conjugate", "'newton', 'damped', 'none' or 'cg'"),
    ("methods.ggn_newton.cg_tolerance", 1.5, "less than 1"),
    ("methods.ggn_newton.cg_iterations", 0, "greater than or equal to 1"),
    ("audit.detection_size", 0.0, "greater than 0"),
    ("audit.detection_size", 1.0, "less than 1"),
    ("audit.detection_power", 1.0, "less than 1"),  # certainty needs infinite evidence
    ("audit.detection_power", -0.5, "greater than 0"),
    ("audit.detection_power", "0.95", "valid number"),
    ("audit.detection_power", float("nan"), "less than 1"),
    ("audit.detection_power", 0.01, "below detection_size 0.05"),
    ("audit.detection_size", 0.99, "0.95 is below detection_size 0.99"),
])
def test_values_a_typo_or_an_attacker_could_give_are_refused(path, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        settings.parse(changed(path, value))
    assert path.split(".")[0] in str(info.value)


@pytest.mark.parametrize("name", ["../../../tmp/evil", "a; touch /tmp/pwned", "", "Upper", "x" * 65, "a b"])
def test_method_names_name_stages_and_files_so_they_are_plain(name):
    raw = copy.deepcopy(RAW)
    raw["methods"][name] = raw["methods"][RAW["gate"]["method"]]
    with pytest.raises(ConfigError, match="methods"):
        settings.parse(raw)


@pytest.mark.parametrize("source, csv_kind, likelihood, valid", [
    ("two_clusters", "real", "gaussian", True), ("two_clusters", "real", "bernoulli", False),
    ("default", "real", "bernoulli", True), ("default", "real", "gaussian", False),
    ("csv", "binary", "bernoulli", True), ("csv", "binary", "gaussian", False), ("csv", "real", "bernoulli", False),
    ("penguins", "real", "categorical", True), ("penguins", "real", "gaussian", False),
    ("penguins", "real", "bernoulli", False), ("two_clusters", "real", "categorical", False),
    ("default", "real", "categorical", False), ("csv", "categorical", "categorical", True),
    ("csv", "categorical", "gaussian", False), ("csv", "binary", "categorical", False),
])
def test_the_likelihood_must_fit_the_target_of_the_source(source, csv_kind, likelihood, valid):
    raw = changed("model.likelihood", likelihood)
    classes = {"classes": ["a", "b", "c"]} if csv_kind == "categorical" else {}
    raw["prepare"] = {**raw["prepare"], "source": source,
                      "csv": {**raw["prepare"]["csv"], "target_kind": csv_kind, **classes}}
    if valid:
        assert settings.parse(raw).model.likelihood == likelihood
    else:
        with pytest.raises(ConfigError, match="model.likelihood: .* does not fit the"):
            settings.parse(raw)


def test_the_project_params_are_valid():
    assert settings.parse(RAW).gate.method in RAW["methods"]


def _load_text(tmp_path, text: str | bytes):
    path = tmp_path / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return settings.load(path)


@pytest.mark.parametrize("text, message", [
    ("prepare: !!python/object/apply:os.system ['true']", "not valid YAML"),
    ("prepare: 1\nprepare: 2\n", "not valid YAML"),
    (b"prepare: caf\xe9\n", "not UTF-8"),
    ("- a list\n", "must be a mapping"),
    ("a: &x [" + ",".join(["s"] * 2000) + "]\nb: [" + ",".join(["*x"] * 2000) + "]\n", "anchors and aliases"),
])
def test_unreadable_params_are_a_config_error(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        _load_text(tmp_path, text)


def test_a_deeply_nested_file_does_not_crash_the_process(tmp_path):
    """In a child process: a segfault there is a failed assertion here, not a dead test run."""
    path = tmp_path / "params.yaml"
    path.write_text("a: " + "[" * 50_000 + "]" * 50_000)
    result = subprocess.run([sys.executable, "-m", "bayesunlearn.io.settings", str(path)], capture_output=True,
                            text=True, cwd=REPO)
    assert result.returncode == 2 and "not valid YAML" in result.stderr, (result.returncode, result.stderr[-500:])


SHIPPED = (REPO / "params.yaml").read_text()


def _laughs(levels: int = 9) -> str:
    lines = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return SHIPPED + "\n".join(lines) + "\n"


# The hostile files of issue 28 (finding 4), each once reached DVC's parser before the project's check.
HOSTILE = {
    "nine nested aliases (billion laughs)": (_laughs(), "anchors and aliases"),
    "69 KB nested list at prepare.seed": (SHIPPED.replace("  seed: 0\n", "  seed: " + "[" * 34_500 + "]" * 34_500
                                                          + "\n", 1), "nested more than 16 levels"),
    "66 KB nested block": (SHIPPED + "".join(" " * i + f"k{i}:\n" for i in range(350)) + " " * 350 + "x\n",
                           "nested more than 16 levels"),
    "prepare.test_fraction: 1.5": (SHIPPED.replace("test_fraction: 0.2", "test_fraction: 1.5", 1),
                                   "prepare.test_fraction: Input should be less than 1"),
    "split.requests_dir: /etc": (SHIPPED.replace("requests_dir: data/requests", "requests_dir: /etc", 1),
                                 "split.requests_dir: '/etc' must be a relative path inside the workspace"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_each_hostile_params_file_is_refused_in_seconds_with_one_line(tmp_path, case):
    """What `make repro`, the flows and the DVC `params` stage run first: exit 2, one line, no traceback."""
    import time

    text, message = HOSTILE[case]
    assert text != SHIPPED and len(text) < settings.MAX_PARAMS_BYTES
    path = tmp_path / "params.yaml"
    path.write_text(text)
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bayesunlearn.io.settings", str(path)], capture_output=True,
                            text=True, cwd=REPO, timeout=60)
    elapsed = time.monotonic() - start
    assert result.returncode == 2 and message in result.stderr, (result.returncode, result.stderr[-500:])
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert elapsed < 10, f"{case}: refused after {elapsed:.1f} s"


def test_the_shipped_file_is_within_the_nesting_limit():
    assert settings._yaml_load(SHIPPED)["prepare"]["two_clusters"]["clusters"][0] == [-2.0, -0.5]  # nests 5 deep


def test_the_check_stamp_is_written_only_when_the_check_passes(tmp_path):
    """The DVC `params` stage: its output is constant, so a valid change of params.yaml invalidates nothing."""
    stamp, bad = tmp_path / "stamp.json", tmp_path / "bad.yaml"
    assert settings.main([str(REPO / "params.yaml"), "--stamp", str(stamp)]) == 0
    assert stamp.read_text() == settings.STAMP_TEXT
    stamp.unlink()
    bad.write_text(HOSTILE["prepare.test_fraction: 1.5"][0])
    assert settings.main([str(bad), "--stamp", str(stamp)]) == 2 and not stamp.exists()


def test_a_fifo_or_a_huge_file_is_refused_without_reading_it(tmp_path):
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        settings.load(fifo)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (settings.MAX_PARAMS_BYTES + 1))
    with pytest.raises(ConfigError, match="more than the 1,000,000 allowed"):
        settings.load(big)


# --- update_params (purge, and any tool that edits params.yaml) -----------------------------------
@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    return path


@pytest.mark.parametrize("changes", [
    {"nope.x": 1}, {"model.hidden.0": 5}, {"model.prior_precision.x": 1}, {"model.hidden": [object()]},
    {"model.prior_precision": -1.0}, {"prepare.csv.nope": "x"}, {"train.seed": 10**4000},
])
def test_update_params_refuses_with_a_config_error_and_leaves_the_file(params_file, changes):
    before = params_file.read_bytes()
    with pytest.raises(ConfigError):
        settings.update_params(params_file, changes)
    assert params_file.read_bytes() == before


@pytest.mark.parametrize("text", ["a: [", "a: 1\na: 2\n", b"\xe9\xff"])
def test_update_params_on_a_damaged_file_is_a_config_error(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError):
        settings.update_params(path, {"model.noise_std": 0.2})


def test_update_params_creates_an_optional_section_and_keeps_the_rest(params_file):
    raw = yaml.safe_load(params_file.read_text())
    del raw["prepare"]["csv"]
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    settings.update_params(params_file, {"prepare.csv.path": "data/raw/records.csv", "prepare.csv.target": "y"})
    updated = settings.load(params_file)
    assert updated.prepare.csv.path == "data/raw/records.csv"
    assert updated.model == settings.parse(raw).model


# --- Hypothesis: any value anywhere is a ConfigError or valid settings -------------------------------
def _leaf_paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaf_paths(value, (*prefix, key))
    else:
        yield prefix


LEAVES = sorted(_leaf_paths(RAW))
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaf=st.sampled_from(LEAVES), value=VALUES)
def test_any_value_at_any_key_is_valid_settings_or_a_config_error(leaf, value):
    raw = copy.deepcopy(RAW)
    node = raw
    for part in leaf[:-1]:
        node = node[part]
    node[leaf[-1]] = value
    try:
        settings.parse(raw)
    except ConfigError as err:
        assert str(err).startswith("params.yaml: ")


# --- cron: what settings accept, Prefect's scheduler accepts too (else `make serve` fails late) ---------------
CRON_ATOMS = st.sampled_from(["*", "0", "5", "15", "59", "99", "MON", "FRI", "JAN", "L", "5L", "LW", "?", "#", "W"])
CRON_FIELDS = st.builds(lambda a, sep, b: a + sep + b if sep else a, CRON_ATOMS,
                        st.sampled_from(["", "-", "/", ",", "#"]), CRON_ATOMS)


@hsettings(max_examples=300, deadline=None)
@given(fields=st.lists(CRON_FIELDS, min_size=4, max_size=6))
def test_every_cron_that_settings_accept_is_one_prefect_accepts(fields):
    from prefect._internal.schemas.validators import validate_cron_string

    cron = " ".join(fields)
    try:
        settings.parse(changed("schedule.intake_cron", cron))
    except ConfigError:
        return
    assert validate_cron_string(cron) == cron
