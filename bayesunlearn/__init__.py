"""Bayesian machine unlearning: the math, with no knowledge of DVC or Prefect.

Modules that need TensorFlow (network, model, training, curvature, laplace,
unlearn, evaluation) are imported explicitly by their users, so light tools such
as request validation never pay TensorFlow's start-up cost.
"""

__version__ = "0.1.0"
