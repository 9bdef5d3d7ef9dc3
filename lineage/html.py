"""`deletions audit show REQUEST --html`: one event as a page a reviewer can read without tools.

Self-contained HTML (no scripts, no network): the request, the lineage from
request to served posterior with the dvc.lock hashes before and after, the
gate's metrics against its thresholds, and the exact revision. Rendered with
Jinja2 (installed with DVC and Prefect) with autoescaping on, so no ledger text
reaches the page unescaped.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment

from . import repo
from .entries import Applied, LedgerEntry, Purge
from .words import count

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

PAGE = """<!doctype html><html><head><meta charset='utf-8'><title>Deletion {{ e.request.request_id }}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
code{font-size:13px}.pass{color:#176a2b;font-weight:600}.fail{color:#a11;font-weight:600}
.flow{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center}.box{border:1px solid #889;border-radius:6px;
padding:.3rem .5rem;background:#f5f6fa}.changed{background:#fff4d6;border-color:#c90}.arrow{color:#889}</style>
</head><body><h1>Deletion {{ e.request.request_id }}</h1>
<table>
<tr><td>request</td><td>{{ e.request.request_id }}</td></tr>
<tr><td>reason</td><td>{{ e.request.reason }}</td></tr>
<tr><td>received</td><td>{{ e.request.received_at }}</td></tr>
<tr><td>applied</td><td>{{ e.applied_at }} (run {{ e.run_id }}{% if together %}, together with
{{ together | join(", ") }}{% endif %})</td></tr>
<tr><td>records forgotten</td><td>{{ e.request.n_records }}</td></tr>
<tr><td>record ids</td><td>{{ e.request.record_hashes | length | count("keyed hash") }} (never stored in clear)</td></tr>
<tr><td>method</td><td>{{ e.method }} on {{ e.posterior }}</td></tr>
<tr><td>revision</td><td>{% if commit_url %}<a href="{{ commit_url }}"><code>{{ e.git_commit }}</code></a>
{% else %}<code>{{ e.git_commit }}</code> (<code>git show {{ e.git_commit[:12] }}</code>){% endif %}</td></tr>
<tr><td>uncommitted changes</td><td>{{ e.dirty | join(", ") or "none" }}</td></tr>
<tr><td>re-runnable</td><td>{% if purge %}No: purge entry {{ purge.seq }} deleted its records from the raw data;
hashes remain verifiable.{% else %}Yes: <code>deletions audit reproduce {{ e.request.request_id }}</code>{% endif %}
</td></tr>
<tr><td>ledger entry</td><td>{{ e.seq }} · <code>{{ e.entry_hash[:16] }}</code></td></tr>
</table>
<h2>Lineage</h2><p>From request to served posterior; highlighted = changed by this event
{%- if e.artifacts_before is none %} (the state before it is unknown: applied before the ledger began){% endif %}.</p>
<div class="flow">{% for box in boxes %}{% if not loop.first %}<span class="arrow">→</span>{% endif %}
<div class="box{% if box.changed %} changed{% endif %}"><b>{{ box.label }}</b><br><code>{{ box.path }}</code><br>
<code>{{ box.md5[:12] }}</code>{% if box.changed %} (new){% endif %}</div>{% endfor %}</div>
<h2>Gate</h2><p>Decision: <span class="{{ 'pass' if e.gate.decision == 'pass' else 'fail' }}">{{ e.gate.decision }}</span>
→ served the <b>{{ e.served_path }}</b> path. {{ e.gate.reasons | join("; ") }}</p>
<table><tr><th>signal</th><th>value</th><th>threshold</th><th></th></tr>
{% for s in signals %}<tr><td>{{ s.name }}</td><td>{{ s.value }}</td><td>{{ s.limit }}</td>
<td>{% if s.ok is not none %}<span class="{{ 'pass' if s.ok else 'fail' }}">{{ 'pass' if s.ok else 'fail' }}</span>
{% endif %}</td></tr>{% endfor %}</table>
</body></html>
"""
_ENV = Environment(autoescape=True)
_ENV.filters["count"] = count
_TEMPLATE = _ENV.from_string(PAGE)


def _boxes(event: Applied) -> list[dict]:
    before, after = event.artifacts_before or {}, event.artifacts_after
    boxes, shown = [], set()
    for prefix, label in LINEAGE:
        for path in (p for p in after if p == prefix or (prefix.endswith("/") and p.startswith(prefix))):
            if path not in shown:
                shown.add(path)
                boxes.append({"label": label, "path": path, "md5": after[path],
                              "changed": event.artifacts_before is not None and before.get(path) != after[path]})
    return boxes


def _signals(event: Applied) -> list[dict]:
    metrics, limits = event.gate.metrics, event.gate.thresholds
    rows = []
    for name, value, limit in (("retained NLL change", metrics.get("retained_nll_change"),
                                limits.get("max_retained_nll_change")),
                               ("residual ratio", metrics.get("residual_ratio"), limits.get("max_residual_ratio")),
                               ("membership AUC", metrics.get("mia_auc"), limits.get("max_mia_auc"))):
        if value is None and limit is None:  # a signal an older entry did not record
            continue
        ok = None if limit is None else value is not None and value <= limit  # no limit: reported, not judged
        rows.append({"name": name, "value": f"{value:.4g}" if isinstance(value, float) else "–",
                     "limit": "reported only" if limit is None else f"≤ {limit}", "ok": ok})
    repair, allowed = metrics.get("repair"), limits.get("allowed_repairs")
    rows.append({"name": "repair", "value": "–" if repair is None else str(repair),
                 "limit": "–" if allowed is None else _either(allowed),
                 "ok": None if repair is None or allowed is None else repair in allowed})
    return rows


def _either(values: list) -> str:
    """["none"] -> "none"; ["none", "clip", "damp"] -> "none, clip or damp" (not a Python list on the page)."""
    words = [str(v) for v in values]
    return " or ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words) or "nothing"


def event_page(event: Applied, entries: list[LedgerEntry], root: Path) -> str:
    purge = next((e for e in entries if isinstance(e, Purge) and event.seq in e.not_rerunnable), None)
    url = repo.git(root, "remote", "get-url", "origin", check=False).removesuffix(".git")
    together = [r for r in event.applied_together if r != event.request.request_id]
    return _TEMPLATE.render(e=event, purge=purge, together=together, boxes=_boxes(event), signals=_signals(event),
                            commit_url=f"{url}/commit/{event.git_commit}" if url.startswith("https://") else "")
