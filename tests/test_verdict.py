"""The audit's verdict (metrics/audit.json) as the gate reads it: only a poor verdict on this very
posterior turns a pass to fallback, and a damaged or hostile file is a clear error that names it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesunlearn.io.contracts import ContractError, GateReport
from stages.verdict import AuditVerdict, honour, sha256_of


def decision(**changes) -> GateReport:
    base = dict(method="ggn_damped", decision="pass", passed=True, reasons=[], retained_nll_change=0.0,
                residual_ratio=0.5, residual_unlearned=1.0, residual_original=2.0, original_grad_norm=1e-7, mia_auc=0.5,
                unlearn_status="ok", repair="none", n_forgotten=3)
    return GateReport(**(base | changes))


def verdict(sha: str, **changes) -> AuditVerdict:
    base = dict(method="ggn_damped", unlearned_sha256=sha, gate="pass", audit="poor",
                problems=["gain 1.2 ≥ 1"], gate_missed_it=True, requests=["req-0001"],
                gain=1.2, indistinguishability=3.0, pred_kl_unlearned_retrained=0.1,
                pred_kl_original_retrained=0.08, pred_kl_retrain_floor=0.01)
    return AuditVerdict(**(base | changes))


@pytest.fixture
def posterior(tmp_path):
    path = tmp_path / "ggn_damped.npz"
    path.write_bytes(b"an unlearned posterior")
    return path


def test_a_poor_verdict_on_this_posterior_turns_the_pass_to_fallback(posterior):
    out = honour(decision(), verdict(sha256_of(posterior)), posterior)
    assert out.decision == "fallback" and not out.passed
    assert out.reasons == ["the audit found this posterior poor (gain 1.2 ≥ 1)"]


@pytest.mark.parametrize("change", [{"audit": "good", "problems": []}, {"method": "last_layer"},
                                    {"unlearned_sha256": "0" * 64}])
def test_a_good_foreign_or_stale_verdict_changes_nothing(posterior, change):
    before = decision()
    assert honour(before, verdict(sha256_of(posterior), **change), posterior) == before


def test_a_verdict_never_changes_a_fallback(posterior):
    refused = decision(decision="fallback", passed=False, reasons=["membership AUC 0.9 > 0.7"])
    good = verdict(sha256_of(posterior), audit="good", problems=[], gate="fallback", gate_missed_it=False)
    assert honour(refused, good, posterior) == refused
    assert honour(refused, verdict(sha256_of(posterior)), posterior) == refused  # the gate's own reasons stay


def test_the_verdict_round_trips_through_its_file(tmp_path, posterior):
    v = verdict(sha256_of(posterior))
    v.write(tmp_path / "audit.json")
    assert AuditVerdict.read(tmp_path / "audit.json") == v


def test_the_committed_verdict_is_valid():
    AuditVerdict.read("metrics/audit.json")  # written before the audit's test was stated: its fields are optional


def test_an_immaterial_verdict_keeps_the_pass_and_says_why(posterior):
    from flows.audit import evidence_line

    immaterial = verdict(sha256_of(posterior), audit="immaterial", problems=[], gate_missed_it=False,
                         evidence_nats=0.4, original_evidence_nats=1.1, detectable_nats=5.41)
    assert honour(decision(), immaterial, posterior) == decision()
    line = evidence_line(immaterial)
    assert "0.4 nats (the original's: 1.1) against 5.41 nats" in line and "immaterial" in line
    assert "immaterial" not in evidence_line(immaterial.model_copy(update={"audit": "good"}))


@pytest.mark.parametrize("key, value", [("evidence_nats", "5"), ("detectable_nats", [1.0])])
def test_the_test_s_fields_are_numbers_when_present(tmp_path, posterior, key, value):
    body = verdict(sha256_of(posterior)).model_dump() | {key: value}
    (tmp_path / "audit.json").write_text(json.dumps(body))
    with pytest.raises(ContractError, match=key):
        AuditVerdict.read(tmp_path / "audit.json")


json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(body=st.one_of(json_values, st.builds(lambda d: json.dumps(d), json_values), st.binary(max_size=64)))
def test_a_hostile_verdict_file_is_a_clear_error_that_names_it(tmp_path_factory, body):
    path = tmp_path_factory.mktemp("verdict") / "audit.json"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(json.dumps(body) if not isinstance(body, str) else body)
    with pytest.raises(ContractError, match="audit.json") as caught:
        AuditVerdict.read(path)
    assert "git checkout -- metrics/audit.json" in str(caught.value) and "dvc repro" not in str(caught.value)


def test_a_missing_verdict_names_the_remedy(tmp_path):
    with pytest.raises(ContractError, match="does not exist; restore the last committed verdict with `git checkout"):
        AuditVerdict.read(tmp_path / "audit.json")


@pytest.mark.parametrize("key, value", [("unlearned_sha256", "not-a-hash"), ("audit", "fine"),
                                        ("gate", "maybe"), ("gain", "1.0")])
def test_a_verdict_with_one_bad_field_names_the_field(tmp_path, posterior, key, value):
    body = verdict(sha256_of(posterior)).model_dump() | {key: value}
    (tmp_path / "audit.json").write_text(json.dumps(body))
    with pytest.raises(ContractError, match=key):
        AuditVerdict.read(tmp_path / "audit.json")
