"""What a newcomer meets: every key of params.yaml explained where `dvc exp run -S` cannot strip it, every
experiment command in the docs aimed at a target, and a clone whose `dvc pull` needs nothing of the study."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import REPO
from ruamel.yaml import YAML

from bayesunlearn.io import sections, settings
from bayesunlearn.kinds import KINDS

PAGE = REPO / "docs/parameters.md"


def _sections() -> dict[str, str]:
    """docs/parameters.md split at its `## \\`name\\`` headings: name -> that section's text."""
    parts = re.split(r"^## `([a-z_]+)`\n", PAGE.read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _keys(model: type[sections.Section]) -> set[str]:
    """The keys a section model accepts, nested models' keys included."""
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, sections.Section):
            keys |= _keys(field.annotation)
    return keys


def _params() -> dict:
    return YAML(typ="safe").load((REPO / "params.yaml").read_text())


def test_every_section_of_params_yaml_has_a_section_in_the_parameters_page():
    described = _sections()
    assert list(_params()) == [name for name in described if name in _params()], (
        "docs/parameters.md must describe the sections of params.yaml in the file's order")
    assert set(settings.Settings.model_fields) <= set(described)


@pytest.mark.parametrize("section", sorted(settings.Settings.model_fields))
def test_every_key_of_a_section_is_explained_in_its_section(section):
    text = _sections()[section]
    annotation = settings.Settings.model_fields[section].annotation
    if section == "methods":
        keys = _keys(sections.Divide) | _keys(sections.VariationalUnlearning)
    elif section == "posteriors":
        keys = set(KINDS)
    else:
        keys = _keys(annotation)
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"docs/parameters.md section `{section}` does not explain {missing}"


def _comments(text: str) -> list[str]:
    return [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]


@pytest.mark.parametrize("override", ["model.prior_precision=2.0", "prepare.source=concrete",
                                      "gate.method=ggn_newton", "methods.ggn_refined.refine=2",
                                      "sweep.n_workers=1"])
def test_dvc_exp_run_set_param_keeps_every_comment_of_params_yaml(override, tmp_path):
    """`dvc exp run -S` rewrites params.yaml through this function; a comment it drops is an explanation lost."""
    from dvc.utils.hydra import apply_overrides

    copy = tmp_path / "params.yaml"
    shutil.copyfile(REPO / "params.yaml", copy)
    apply_overrides(copy, [override])
    kept = set(_comments(copy.read_text()))
    assert copy.read_text() != (REPO / "params.yaml").read_text()  # the override did rewrite the file
    assert [c for c in _comments((REPO / "params.yaml").read_text()) if c not in kept] == []


def _code(text: str) -> list[str]:
    """The commands a page gives: lines of fenced blocks and inline code spans, whitespace collapsed."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return [*(line for block in fenced for line in block.splitlines()),
            *(re.sub(r"\s+", " ", span) for span in re.findall(r"`([^`]+)`", prose))]


def test_code_extraction_sees_wrapped_spans_and_fenced_lines():
    text = "Run `dvc exp run -S a=1\n  -S b=2` now.\n```bash\ndvc exp run headline -S c=3   # main job\n```\n"
    assert _code(text) == ["dvc exp run headline -S c=3   # main job", "dvc exp run -S a=1 -S b=2"]


def test_every_dvc_exp_run_in_the_docs_targets_a_stage():
    """Without a target, `dvc exp run -S` reproduces every configured method and its retrains, not the main job;
    every experiment the docs give names its target (`headline` for the main job)."""
    stages = set(YAML(typ="safe").load((REPO / "dvc.yaml").read_text())["stages"])
    study = set(YAML(typ="safe").load((REPO / "study/dvc.yaml").read_text())["stages"])
    untargeted = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for command in _code(path.read_text()):
            for rest in re.findall(r"dvc exp run\b(.*)", command):
                if not re.search(r"(^|\s)(-S|--set-param)(\s|=)", rest):
                    continue  # the command named in prose, not an experiment given
                target = rest.split()[0]
                if not (target.split("@")[0] in stages
                        or target.startswith("study/dvc.yaml:") and target.split(":")[1] in study):
                    untargeted.append(f"{path.name}: {command}")
    assert not untargeted, untargeted


def test_the_study_outputs_live_in_git_so_dvc_pull_needs_none_of_them():
    """`dvc pull` skips outputs with `cache: false`; a cached study output that no remote holds (the study is
    rarely pushed) made a fresh clone's pull fail."""
    stages = YAML(typ="safe").load((REPO / "study/dvc.yaml").read_text())["stages"]
    outs = {}
    for stage in stages.values():
        for out in stage["outs"]:
            path, spec = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            outs[path] = (spec or {}).get("cache", True)
    assert outs and [p for p, cached in outs.items() if cached] == []
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *outs], cwd=REPO, capture_output=True, text=True)
    assert ignored.stdout.split() == [], "git ignores study outputs that should be committed"
