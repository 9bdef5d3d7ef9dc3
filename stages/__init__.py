"""One thin entry point per DVC stage: read params and inputs, call the core, write outputs."""

import bayesunlearn  # noqa: F401  (first: it pins the BLAS kernel before NumPy loads)
