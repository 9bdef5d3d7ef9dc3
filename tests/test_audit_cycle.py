"""The whole audit cycle on a tiny copy of the project:
request → flow → ledger → verify → reproduce → purge → scan finds nothing → verify still passes.

One forgotten record carries marker values, so "the values are gone" is checked
by searching for bytes we know, independently of the purge's own scan.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
from conftest import sh, tiny_repo, write_request

from bayesunlearn.io import datasets, store
from lineage import cli, events
from lineage.inbox import Inbox

pytestmark = pytest.mark.slow

# computed, not written out: a literal in this file would itself be found by the scan (the tests are copied too)
MARKER = {"x": math.pi / 10, "y": math.e}


def marker_needles() -> list[bytes]:
    texts = [f"{v:.17g}".encode() for v in MARKER.values()]
    return texts + [struct.pack("<d", v) for v in MARKER.values()]


def raw_with_marker(root: Path) -> None:
    """Raw data tracked by DVC (as real data would be), one training record carrying the marker values."""
    frame = datasets.two_clusters(60, 0, 0.1, [[-2.0, -0.5], [0.5, 2.0]])
    raw = datasets.raw_table(frame, 0.2, 0)
    marked = raw.index[raw[datasets.SUBSET] == "train"][10]
    raw.loc[marked, ["x", "y"]] = [MARKER["x"], MARKER["y"]]
    store.save_table(root / "data" / "raw" / "records.csv", raw)
    sh("dvc", "add", "data/raw/records.csv", cwd=root)


def files_holding(root: Path, needles: list[bytes], areas: list[str]) -> list[str]:
    found = []
    for area in areas:
        for path in (root / area).rglob("*") if (root / area).exists() else []:
            if path.is_file() and any(n in path.read_bytes() for n in needles):
                found.append(str(path.relative_to(root)))
    return found


@pytest.fixture(scope="module")
def cycle(prefect, tmp_path_factory):
    from flows.intake import process_deletion_requests

    csv = {"path": "data/raw/records.csv", "target": "y", "id_column": datasets.ID}
    root = tiny_repo(tmp_path_factory.mktemp("cycle"), before_prepare=raw_with_marker,
                     extra={("prepare", "source"): "csv", ("prepare", "csv"): csv,
                            ("ledger", "retention_days"): 0})
    raw = store.load_table(root / "data" / "raw" / "records.csv")
    marker_id = raw.loc[(raw["x"] == MARKER["x"]), datasets.ID].item()
    neighbour = raw.loc[raw[datasets.SUBSET] == "train", datasets.ID].iloc[11]
    write_request(root, "req-0002", [marker_id, neighbour], folder="inbox")
    result = process_deletion_requests(repo=str(root))
    return root, marker_id, result


def unlearn(root: Path, *args: str) -> int:
    return cli.main(["--repo", str(root), *args])


def test_the_flow_writes_one_committed_entry_per_applied_request(cycle):
    root, _, result = cycle
    entries = events.ledger(root).entries()
    # req-0002 came through the inbox; req-0001 shipped with the repository, applied by the same run's split:
    # both are recorded, as one run
    assert result["ledger_entries"] == [0, 1]
    assert [e.request.request_id for e in entries] == ["req-0001", "req-0002"]
    assert entries[1].request.n_records == 2
    assert entries[1].event in ("applied", "fallback")
    assert entries[1].artifacts_after["models/served"] == result["hashes"]["models/served"]
    assert entries[0].run_id == entries[1].run_id and entries[1].applied_together == ["req-0001", "req-0002"]
    assert entries[0].artifacts_before is not None  # the state this first run started from, before either
    # the event's commit holds the request and the dvc.lock that the entry describes
    assert sh("git", "show", f"{entries[1].git_commit}:data/requests/req-0002.json", cwd=root).returncode == 0
    assert sh("git", "status", "--porcelain", "audit", cwd=root).stdout == ""  # the ledger is committed too


def test_the_cli_records_nothing_twice(cycle, capsys):
    root, _, _ = cycle
    assert unlearn(root, "audit", "record") == 0
    assert "nothing to record" in capsys.readouterr().out
    assert [e.request.request_id for e in events.ledger(root).entries()] == ["req-0001", "req-0002"]
    assert unlearn(root, "audit", "record", "req-0001") == cli.EXIT_INPUT  # already recorded


def test_no_forgotten_value_or_id_leaks_into_ledger_metrics_or_models(cycle):
    root, marker_id, _ = cycle
    assert files_holding(root, marker_needles(), ["audit", "metrics", "models", "inbox", "plots"]) == []
    assert marker_id.encode() not in (root / "audit" / "ledger.jsonl").read_bytes()


def test_verify_trace_show_and_reproduce_before_the_purge(cycle, capsys, tmp_path):
    root, marker_id, _ = cycle
    assert unlearn(root, "audit", "verify") == 0
    out = capsys.readouterr().out
    assert "verify: passed" in out and "forgotten records that unlearning divides out" in out
    assert unlearn(root, "audit", "trace", marker_id) == 0
    assert "forgotten by request req-0002" in capsys.readouterr().out
    page = tmp_path / "req-0002.html"
    assert unlearn(root, "audit", "show", "req-0002", "--html", str(page)) == 0
    html = page.read_text()
    assert "Lineage" in html and "req-0002" in html and marker_id not in html
    assert unlearn(root, "audit", "reproduce", "req-0002") == 0
    assert "bit-identical" in capsys.readouterr().out


def test_verify_catches_an_unrecorded_change_of_the_served_posterior(cycle, capsys):
    root, _, _ = cycle
    served = root / "models" / "served" / "provenance.json"
    original = served.read_bytes()
    served.write_bytes(original + b" ")
    try:
        assert unlearn(root, "audit", "verify") == cli.EXIT_FAILED
        assert "models/served/provenance.json: differs from dvc.lock" in capsys.readouterr().out
    finally:
        served.write_bytes(original)


def test_purge_deletes_the_records_everywhere_and_verify_still_passes(cycle, capsys):
    root, marker_id, _ = cycle
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    database = Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split("///", 1)[-1]).parent  # the test server's
    # a file in the inbox naming a record to purge stops the purge before it starts; refused, it is removed
    pending = write_request(root, "req-0003", [marker_id, "no-such-record"], folder="inbox")
    assert unlearn(root, "purge") == cli.EXIT_INPUT and "triage them first" in capsys.readouterr().err
    intake = Inbox(root)
    verdict = intake.triage(pending, intake.in_force(), intake.known_ids())
    assert verdict.rule == "unknown-record"
    intake.reject(pending, verdict)
    assert marker_id.encode() in (intake.rejected / pending.name).read_bytes()
    assert unlearn(root, "purge", "--scan", str(database)) == 0, capsys.readouterr()  # 0 = its scan found nothing
    assert files_holding(root, [marker_id.encode()], ["inbox"]) == []
    assert "removed 1 refused file naming purged records" in capsys.readouterr().out
    purge = events.ledger(root).entries()[-1]
    assert purge.event == "purge" and purge.scan["hits"] == 0 and purge.n_records_removed == 7
    assert {"workspace", "cache", "remote", f"extra:{database.name}"} <= set(purge.scan["files_searched"])
    assert purge.not_rerunnable == [0, 1]
    # an independent search: the marker values are nowhere in the workspace or the DVC cache
    areas = [p.name for p in root.iterdir() if p.name not in (".git",)]
    assert files_holding(root, marker_needles(), areas) == []
    assert not list((root / "data" / "requests").glob("*.json"))
    assert unlearn(root, "audit", "verify") == 0, capsys.readouterr().out
    assert unlearn(root, "audit", "reproduce", "req-0002") == cli.EXIT_NOT_REPRODUCIBLE
    assert unlearn(root, "audit", "trace", marker_id) == 0
    assert "purged from the raw data" in capsys.readouterr().out
    # the base model was retrained on what remains: 48 training records less the 7 purged
    assert json.loads((root / "data" / "prepared" / "scaling.json").read_text())["n_train"] == 41
