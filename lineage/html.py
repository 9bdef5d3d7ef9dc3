"""`unlearn audit show REQUEST --html`: one event as a page a reviewer can read without tools.

Self-contained HTML (no scripts, no network): the request, the lineage from
request to served posterior with the dvc.lock hashes before and after, the
gate's metrics against its thresholds, and the exact revision.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from . import repo

LINEAGE = [  # the production path, in order: (artifact, what it is)
    ("data/requests", "deletion requests in force"),
    ("data/raw", "raw data"),
    ("data/prepared", "prepared data (ids, test split, scaling)"),
    ("data/split", "retained / forgotten records"),
    ("models/original/map.npz", "base MAP network"),
    ("models/original/", "base posterior"),
    ("models/unlearned/", "unlearned posterior"),
    ("models/served", "served posterior"),
]
STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
code{font-size:13px}.pass{color:#176a2b;font-weight:600}.fail{color:#a11;font-weight:600}
.flow{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center}.box{border:1px solid #889;border-radius:6px;
padding:.3rem .5rem;background:#f5f6fa}.changed{background:#fff4d6;border-color:#c90}.arrow{color:#889}"""


def _table(rows: list[tuple], header: tuple = ()) -> str:
    head = f"<tr>{''.join(f'<th>{escape(str(h))}</th>' for h in header)}</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _lineage(event: dict) -> str:
    before, after = event.get("artifacts_before", {}), event["artifacts_after"]
    boxes, shown = [], set()
    for prefix, label in LINEAGE:
        paths = [p for p in after if p == prefix or (prefix.endswith("/") and p.startswith(prefix))]
        for path in (p for p in paths if p not in shown):
            shown.add(path)
            changed = before.get(path) != after[path]
            boxes.append(f'<div class="box{" changed" if changed else ""}"><b>{escape(label)}</b><br>'
                         f"<code>{escape(path)}</code><br><code>{escape(after[path][:12])}</code>"
                         f"{' (new)' if changed else ''}</div>")
    return '<div class="flow">' + '<span class="arrow">→</span>'.join(boxes) + "</div>"


def _gate(event: dict) -> str:
    gate = event.get("gate")
    if not gate:
        return "<p>No gate for this event.</p>"
    metrics, limits = gate["metrics"], gate["thresholds"]
    rows = []
    for name, limit, value in (("residual ratio", limits.get("max_residual_ratio"), metrics.get("residual_ratio")),
                               ("membership AUC", limits.get("max_mia_auc"), metrics.get("mia_auc"))):
        ok = value is not None and limit is not None and value <= limit
        rows.append((escape(name), f"{value:.4g}" if value is not None else "–", f"≤ {limit}",
                     f'<span class="{"pass" if ok else "fail"}">{"pass" if ok else "fail"}</span>'))
    rows.append(("repair", escape(str(metrics.get("repair"))), f"in {limits.get('allowed_repairs')}", ""))
    decision = gate["decision"]
    return (f'<p>Decision: <span class="{"pass" if decision == "pass" else "fail"}">{escape(decision)}</span> '
            f'→ served the <b>{escape(event.get("served_path", ""))}</b> path. {escape("; ".join(gate["reasons"]))}'
            f"</p>" + _table(rows, ("signal", "value", "threshold", "")))


def _revision(event: dict, root: Path) -> str:
    sha = event["git_commit"]
    url = repo.git(root, "remote", "get-url", "origin", check=False).removesuffix(".git")
    if url.startswith("https://"):
        return f'<a href="{escape(url)}/commit/{sha}"><code>{sha}</code></a>'
    return f"<code>{sha}</code> (<code>git show {sha[:12]}</code>)"


def event_page(event: dict, entries: list[dict], root: Path) -> str:
    request = event["request"]
    purges = [e for e in entries if e.get("event") == "purge" and event["seq"] in e.get("not_rerunnable", [])]
    rerun = (f"No: purge entry {purges[0]['seq']} deleted its records from the raw data; hashes remain verifiable."
             if purges else f"Yes: <code>unlearn audit reproduce {escape(request['request_id'])}</code>")
    facts = [("request", escape(request["request_id"])), ("reason", escape(request["reason"])),
             ("received", escape(request["received_at"])), ("applied", escape(event["applied_at"])),
             ("records forgotten", str(request["n_records"])),
             ("record ids", f"{len(request['record_hashes'])} salted hashes (never stored in clear)"),
             ("method", f"{escape(event['method'])} on {escape(event['posterior'])}"),
             ("revision", _revision(event, root)),
             ("uncommitted changes", escape(", ".join(event["dirty"])) or "none"),
             ("re-runnable", rerun), ("ledger entry", f"{event['seq']} · <code>{event['entry_hash'][:16]}</code>")]
    title = f"Deletion {escape(request['request_id'])}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style>"
            f"</head><body><h1>{title}</h1>{_table(facts)}"
            f"<h2>Lineage</h2><p>From request to served posterior; highlighted = changed by this event.</p>"
            f"{_lineage(event)}<h2>Gate</h2>{_gate(event)}</body></html>\n")
