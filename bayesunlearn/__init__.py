"""Bayesian machine unlearning: the math, free of DVC and Prefect, in layers that import only downwards.

  io/           files and settings: params.yaml (settings), requests, stage contracts, data sets, storage
  numerics/     dense linear algebra, BLAS threads, distances and scores (numpy/SciPy)
  model/        the network f(x, θ), its likelihood and prior, curvature, MAP training (TensorFlow)
  kinds.py      the registry of posterior kinds (TensorFlow-free: settings and light tools read it)
  posteriors/   the posterior, its matrix types (one per storage), Laplace and VI fits
  unlearning/   removing records: Gaussian division, variational operators, the method suite, the gate
  experiments/  judging unlearning against retrains: evaluation, the study and sweep grids, plots, reports
"""
