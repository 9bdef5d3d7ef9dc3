"""Unlearning: Gaussian division (Laplace and VI posteriors), the variational operators (EUBO, reverse KL),
the method suite behind one entry point, and the quality gate that judges a result without a retrain."""
