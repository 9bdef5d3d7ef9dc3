"""TensorFlow and TensorFlow Probability, set up once for bit-reproducible float64 work and quiet logs.

Every project module takes TensorFlow from here (a test checks it), so the set-up
cannot be skipped by importing in another order: oneDNN must be off before
TensorFlow loads (its fused kernels may reorder float sums), op determinism is
switched on, and TensorFlow's C++ start-up chatter (CUDA probes on a machine
without a GPU) is silenced at the source. TensorFlow imported earlier with
oneDNN on cannot be repaired, so that is an error.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

if "tensorflow" in sys.modules and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
    raise ImportError("TensorFlow was imported before bayesunlearn with oneDNN optimisations on, which can "
                      "reorder float sums and break bit-identical results; import bayesunlearn.model.tf first "
                      "or set TF_ENABLE_ONEDNN_OPTS=0 in the environment.")
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# TensorFlow's native start-up messages (absl's pre-initialisation notice, CUDA probes on a machine
# without a GPU) ignore TF_CPP_MIN_LOG_LEVEL: they are filtered out of the process's stderr here.
NOISE = re.compile(r"absl::InitializeLog|cudart_stub\.cc|cuda_(dnn|fft|blas)\.cc|cpu_feature_guard\.cc|"
                   r"port\.cc:\d+\] oneDNN|Unable to register cu(DNN|FFT|BLAS)|computation_placer\.cc")


@contextmanager
def _without_native_noise() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines() if not NOISE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


with _without_native_noise():
    import tensorflow as tf  # noqa: E402
    import tensorflow_probability as tfp  # noqa: E402

tf.config.experimental.enable_op_determinism()
tf.get_logger().setLevel(logging.ERROR)

__all__ = ["tf", "tfp"]
