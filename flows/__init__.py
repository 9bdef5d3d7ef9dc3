"""Prefect flows: deletion intake with a quality gate, the nightly audit, their schedules, and the sweep.

Flows orchestrate and never compute: the math lives in `bayesunlearn`, the
work in DVC stages run as subprocesses. Flow parameters, task parameters,
results and logs carry request ids, paths and hashes only, never records.

Importing this package switches telemetry off and keeps Prefect's home in the
project (.prefect/), also when the flows are started outside `make`.
"""

import os
from pathlib import Path

import bayesunlearn  # noqa: F401  (first: it pins the BLAS kernel before NumPy loads, for the sweep's cells)

for _name, _value in {"DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                      "PREFECT_HOME": str(Path(__file__).resolve().parents[1] / ".prefect")}.items():
    os.environ.setdefault(_name, _value)
