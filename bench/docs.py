"""The generated blocks of the docs: `python -m bench.docs` rewrites them from the results in the workspace.

A block sits between `<!-- NAME:begin -->` and `<!-- NAME:end -->`; the docs
quote generated tables and summaries instead of hand-typed numbers, and
tests/test_report.py fails when a block is stale. The renderers read the
working tree as it is (params.yaml, metrics/, study/, docs/bench.json), committed
or not: run it where those files are the results the docs should quote (after
`dvc repro` and `make bench`, or a clean checkout of a commit), then commit the
docs with them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bayesunlearn import exits
from bayesunlearn.experiments import report
from bench import (classifiers, dvc_timing, experiment_tables, membership, missed, presets, prior, real, scale_out,
                   structures_100k, vi_forgetting, window)
from bench.summary import bench_block


def missed_block() -> str:
    """The gate's misses on the real tables, examined (docs/bench.json "gate_missed", from `make bench`)."""
    return missed.block(json.loads(Path("docs/bench.json").read_text())["gate_missed"])


def prior_block() -> str:
    """The production method on `default` at other priors (docs/bench.json "gate_prior", from `make bench`)."""
    return prior.block(json.loads(Path("docs/bench.json").read_text())["gate_prior"])


def classifiers_block() -> str:
    """Forgetting on the classification tables against fine-tuning (docs/bench.json "classifier_forgetting")."""
    return classifiers.block(json.loads(Path("docs/bench.json").read_text())[classifiers.KEY])


def membership_block() -> str:
    """What the per-record membership test adds on the classification tables (docs/bench.json "membership_events")."""
    return membership.block(json.loads(Path("docs/bench.json").read_text())[membership.KEY])


def vi_forgetting_block() -> str:
    """Every VI method on the regression tables against measured retrains (docs/bench.json "vi_forgetting")."""
    return vi_forgetting.block(json.loads(Path("docs/bench.json").read_text())[vi_forgetting.KEY])


def study_cost_block() -> str:
    """One measured retrain per study table and the study's retrains extrapolated (docs/bench.json "study_cost")."""
    return membership.cost_block(json.loads(Path("docs/bench.json").read_text())[membership.COST_KEY])


def window_block() -> str:
    """The exposure window with and without `audit.after_intake` (docs/bench.json "exposure_window")."""
    return window.block(json.loads(Path("docs/bench.json").read_text())["exposure_window"])


def every_method_block() -> str:
    """The README's line on untargeted `dvc repro` (docs/bench.json "every_method" and "main_job")."""
    return dvc_timing.readme_block(json.loads(Path("docs/bench.json").read_text()))


def summary_block() -> str:
    """The README's example of `make repro`'s summary, from the workspace's results (without timings)."""
    return "```\n" + "\n".join(report.summary(Path("."), with_timing=False)) + "\n```"


BLOCKS = {
    Path("README.md"): {"summary": summary_block, "every_method": every_method_block,
                        "scale_out_readme": scale_out.readme_block},
    Path("docs/scale-out.md"): {"scale_out": scale_out.docs_block,
                                "structure_quality_100k": structures_100k.docs_block},
    Path("docs/methods.md"): {"methods": report.methods_block, "study": report.study_block,
                              "real_study": real.study_block, "gate_confusion": real.confusion_block,
                              "gate_membership": real.membership_block,
                              "gate_calibration": real.calibration_block, "gate_missed": missed_block,
                              "gate_prior": prior_block, "exposure_window": window_block,
                              "classifier_forgetting": classifiers_block, "membership_events": membership_block,
                              "study_cost": study_cost_block, "vi_forgetting": vi_forgetting_block,
                              "presets": presets.block, "experiment_tables": experiment_tables.block},
    Path("docs/benchmark.md"): {"bench": bench_block},
    Path("docs/reliability.md"): {"exit_codes": exits.table},
}


def block_pattern(name: str) -> re.Pattern:
    # the end marker may be indented (a block inside a list item keeps the item's indentation)
    return re.compile(rf"(<!-- {name}:begin -->\n)(?:.*?\n)?([ \t]*<!-- {name}:end -->)", re.S)


def update(root: Path = Path(".")) -> None:
    for path, blocks in BLOCKS.items():
        text = (root / path).read_text()
        for name, render in blocks.items():
            rendered = render()
            text = block_pattern(name).sub(lambda m, rendered=rendered: m.group(1) + rendered + "\n" + m.group(2),
                                           text)
        (root / path).write_text(text)


if __name__ == "__main__":
    update()
