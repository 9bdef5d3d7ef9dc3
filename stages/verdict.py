"""metrics/audit.json: the nightly audit's verdict on one unlearned posterior, and how the gate honours it.

The gate judges without a retrain, so some poor posteriors pass it (on a table
whose retrains land in another local optimum than the original's, no signal
from the original's neighbourhood can tell). The audit retrains and knows. A
verdict names the posterior it judged by its SHA-256; while that posterior is
the one `unlearn` produced, a poor verdict turns the gate's decision to
fallback, so `serve` refits from scratch. A verdict can only make the gate
stricter: a forged or stale one at worst costs a retrain, never serves a
posterior the gate refused.

The audit flow (flows/audit.py) writes the file and records in the ledger the
served posterior it replaced (a `revised` entry); the `gate` stage reads it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field

from bayesunlearn.io.contracts import Contract, ContractError, GateReport

VERDICT = Path("metrics/audit.json")


class AuditVerdict(Contract):
    """The audit of the production method's unlearned posterior against the reference retrains."""

    method: str
    unlearned_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # the posterior judged (models/unlearned/METHOD.npz)
    gate: Literal["pass", "fallback"]     # the gate's decision when the audit ran
    audit: Literal["good", "poor", "immaterial"]  # immaterial: doing nothing is already undetectable
    problems: list[str]
    gate_missed_it: bool                  # the gate passed a posterior the audit finds poor (now refused)
    requests: list[str]
    gain: float
    indistinguishability: float
    pred_kl_unlearned_retrained: float
    pred_kl_original_retrained: float
    pred_kl_retrain_floor: float
    # the audit's test (audit.detection_size, audit.detection_power): n × predictive KL to the retrain over the
    # n judged inputs, of the served posterior and of the original, against the nats the test needs; absent
    # from verdicts written before the test was stated
    evidence_nats: float | None = None
    original_evidence_nats: float | None = None
    detectable_nats: float | None = None

    @classmethod
    def read(cls, path: str | Path) -> AuditVerdict:
        """The verdict; a missing, unreadable or invalid file is an error whose remedy fits it: no stage
        writes it, so `dvc repro` cannot rebuild it."""
        try:
            return super().read(path)
        except ContractError as err:
            problem = str(err).rsplit("; ", 1)[0]
            raise ContractError(f"{problem}; restore the last committed verdict with `git checkout -- {VERDICT}` "
                                "(the next nightly audit writes a new one).") from None


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def honour(decision: GateReport, verdict: AuditVerdict, unlearned: str | Path) -> GateReport:
    """The gate's decision, turned to fallback when the audit found this very posterior poor."""
    if (decision.decision == "fallback" or verdict.audit != "poor" or verdict.method != decision.method
            or verdict.unlearned_sha256 != sha256_of(unlearned)):
        return decision  # a refusal stays as the gate's own signals made it
    reason = f"the audit found this posterior poor ({'; '.join(verdict.problems)})"
    return decision.model_copy(update={"decision": "fallback", "passed": False,
                                       "reasons": [*decision.reasons, reason]})
