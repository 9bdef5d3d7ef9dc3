"""`make experiments`: its column filters name what metrics/headline.json really holds."""

from __future__ import annotations

import re

from conftest import REPO

from bayesunlearn.io import contracts


def _pattern(name: str) -> str:
    return re.search(rf"^{name} := (.+)$", (REPO / "Makefile").read_text(), flags=re.M).group(1)


def test_every_headline_key_is_shown_or_hidden_and_every_name_shown_is_a_key_or_the_table():
    """A headline key neither shown nor hidden would appear only when it differs; a shown name that is no key
    is an empty column (or none at all)."""
    keys = set(contracts.Headline.model_fields)
    shown, hidden = (re.compile(rf"^({_pattern(name)})$") for name in ("SHOWN", "HIDDEN"))
    assert [k for k in keys if not shown.match(k) and not hidden.match(k)] == []
    assert [k for k in keys if shown.match(k) and hidden.match(k)] == []
    names = [name.replace("\\.", ".") for name in _pattern("SHOWN").split("|")]
    assert [n for n in names if n not in keys and n != "prepare.source"] == []
    assert {"method", "served", "gate", "forgotten", "gain", "indistinguishability", "test_rmse",
            "test_accuracy"} <= set(names)


def test_the_make_target_uses_both_filters():
    recipe = (REPO / "Makefile").read_text().split("\nexperiments:")[1].split("\n\n")[0]
    assert "--drop '^($(HIDDEN))$$'" in recipe and "--keep '^($(SHOWN))$$'" in recipe
