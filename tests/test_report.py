"""The README quotes the generated tables, not hand-typed numbers."""

from __future__ import annotations

import re

from conftest import REPO

from bayesunlearn.experiments import report


def test_readme_tables_match_the_committed_results():
    readme = (REPO / "README.md").read_text()
    for name, render in (("methods", report.methods_block), ("study", report.study_block)):
        block = re.search(rf"<!-- {name}:begin -->\n(.*?)\n<!-- {name}:end -->", readme, re.S)
        assert block, f"README has no generated {name} block"
        path = {"methods": report.METHODS_TABLE, "study": report.STUDY_SUMMARY}[name]
        assert block.group(1) == render(REPO / path), (
            f"README's {name} table is stale: run `python -m bayesunlearn.experiments.report --update-readme README.md`")
