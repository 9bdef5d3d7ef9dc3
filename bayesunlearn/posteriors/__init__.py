"""Posteriors over θ: the matrix types a posterior holds (one per storage), the posterior itself, and the
Laplace and VI fits."""
