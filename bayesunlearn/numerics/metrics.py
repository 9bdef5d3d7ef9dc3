"""Distances between Gaussians and between class predictives, and predictive-quality scores (numpy, float64)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.special import expit, log_softmax, softmax


def predictive_kl(mean_p: np.ndarray, var_p: np.ndarray, mean_q: np.ndarray, var_q: np.ndarray) -> np.ndarray:
    """KL(N(mean_p, var_p) ‖ N(mean_q, var_q)) per input."""
    return 0.5 * (np.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / var_q - 1.0)


def gaussian_kl(mean_p: np.ndarray, precision_p: np.ndarray, mean_q: np.ndarray, precision_q: np.ndarray) -> float:
    """KL(N(mean_p, Λ_p⁻¹) ‖ N(mean_q, Λ_q⁻¹)) in parameter space, via Cholesky factors."""
    chol_p = scipy.linalg.cholesky(precision_p, lower=True)
    chol_q = scipy.linalg.cholesky(precision_q, lower=True)
    # tr(Λ_q Σ_p) = ‖L_p⁻¹ L_q‖_F²
    trace = np.sum(scipy.linalg.solve_triangular(chol_p, chol_q, lower=True) ** 2)
    diff = mean_q - mean_p
    mahalanobis = np.sum((chol_q.T @ diff) ** 2)
    logdet_p = 2 * np.sum(np.log(np.diag(chol_p)))
    logdet_q = 2 * np.sum(np.log(np.diag(chol_q)))
    return float(0.5 * (trace + mahalanobis - len(mean_p) + logdet_p - logdet_q))


def wasserstein2(mean_p: np.ndarray, cov_p: np.ndarray, mean_q: np.ndarray, cov_q: np.ndarray) -> float:
    """2-Wasserstein distance between two Gaussians."""
    root_q = scipy.linalg.sqrtm(cov_q)
    cross = scipy.linalg.sqrtm(root_q @ cov_p @ root_q)
    squared = np.sum((mean_p - mean_q) ** 2) + np.trace(cov_p + cov_q - 2 * np.real(cross))
    return float(np.sqrt(max(squared, 0.0)))


def rmse(y: np.ndarray, mean: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - mean) ** 2))) if len(y) else float("nan")


def gaussian_nll(y: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Per-record negative log predictive density."""
    return 0.5 * (np.log(2 * np.pi * var) + (y - mean) ** 2 / var)


def auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half (Mann–Whitney)."""
    if len(positive_scores) == 0 or len(negative_scores) == 0:
        return float("nan")
    pos, neg = np.asarray(positive_scores)[:, None], np.asarray(negative_scores)[None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def probit_logit(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """The logit z of the probit approximation E[sigmoid(f)] ≈ sigmoid(z), z = mean / √(1 + π·var/8),
    for f ~ N(mean, var) (MacKay 1992)."""
    return mean / np.sqrt(1.0 + np.pi * var / 8.0)


def bernoulli_nll(y: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Per-record −log p(y) for y ∈ {0, 1} under Bernoulli(sigmoid z), z the probit logit of N(mean, var)."""
    z = probit_logit(mean, var)
    return np.logaddexp(0.0, z) - y * z


def bernoulli_kl(mean_p: np.ndarray, var_p: np.ndarray, mean_q: np.ndarray, var_q: np.ndarray) -> np.ndarray:
    """KL(Bernoulli(p) ‖ Bernoulli(q)) per input, p and q the probit approximations of the two logit
    Gaussians; log p = −log(1 + e^−z) and log(1 − p) = −log(1 + e^z) keep it finite for |z| large."""
    z_p, z_q = probit_logit(mean_p, var_p), probit_logit(mean_q, var_q)
    p = expit(z_p)
    log_ratio_1 = np.logaddexp(0.0, -z_q) - np.logaddexp(0.0, -z_p)
    log_ratio_0 = np.logaddexp(0.0, z_q) - np.logaddexp(0.0, z_p)
    return np.maximum(p * log_ratio_1 + (1.0 - p) * log_ratio_0, 0.0)  # ≥ 0; nearly equal p, q cancel below 0


def probability(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """p(y = 1) of the probit approximation for a logit f ~ N(mean, var)."""
    return expit(probit_logit(mean, var))


def class_probabilities(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """softmax of the probit-scaled logits z_k = mean_k / √(1 + π·var_k/8), per record (rows of (n, K)
    means and variances of the K logits): the multiclass probit approximation of E[softmax(f)]
    (Lu, Ie and Sha 2020; the `probit` link of laplace-torch)."""
    return softmax(probit_logit(mean, var), axis=1)


def categorical_nll(y: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Per-record −log p(y) under `class_probabilities` (labels 0 … K − 1)."""
    log_p = log_softmax(probit_logit(mean, var), axis=1)
    return -log_p[np.arange(len(log_p)), np.asarray(y).astype(int)]


def categorical_kl(mean_p: np.ndarray, var_p: np.ndarray, mean_q: np.ndarray, var_q: np.ndarray) -> np.ndarray:
    """KL(p ‖ q) between the two predictives' class distributions (`class_probabilities`), per record."""
    log_p = log_softmax(probit_logit(mean_p, var_p), axis=1)
    log_q = log_softmax(probit_logit(mean_q, var_q), axis=1)
    return np.maximum(np.sum(np.exp(log_p) * (log_p - log_q), axis=1), 0.0)  # ≥ 0; rounding can dip below


def _table(probability: np.ndarray) -> np.ndarray:
    """(n, K) class probabilities; a binary p(y = 1) of shape (n,) becomes the two columns (1 − p, p)."""
    probability = np.asarray(probability, dtype=np.float64)
    return np.column_stack([1.0 - probability, probability]) if probability.ndim == 1 else probability


def predicted_class(probability: np.ndarray) -> np.ndarray:
    """The more probable class of each record; a tie goes to the higher class (a binary p = ½ → 1)."""
    table = _table(probability)
    return table.shape[1] - 1 - np.argmax(table[:, ::-1], axis=1)


def accuracy(y: np.ndarray, probability: np.ndarray) -> float:
    """Share of records whose more probable class is y (`probability`: p(y = 1), or (n, K) probabilities)."""
    return float(np.mean(predicted_class(probability) == np.asarray(y).astype(int))) if len(y) else float("nan")


def expected_calibration_error(y: np.ndarray, probability: np.ndarray, bins: int = 10) -> float:
    """Σ_b |B_b|/n · |accuracy(B_b) − confidence(B_b)| over `bins` equal-width bins of the confidence
    (the probability of the predicted class), which lies in [1/K, 1] (the usual top-label ECE)."""
    if len(y) == 0:
        return float("nan")
    table = _table(probability)
    k = table.shape[1]
    confidence = table.max(axis=1)
    correct = (predicted_class(table) == np.asarray(y).astype(int)).astype(np.float64)
    which = np.minimum(((confidence - 1.0 / k) / (1.0 - 1.0 / k) * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.sum() / len(y) * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def membership_auc(nll_forgotten: np.ndarray, nll_unseen: np.ndarray) -> float:
    """Loss-threshold membership attack: a record is called 'member' when its loss is low.

    0.5 means the forgotten records look like records never seen; the target is
    the retrained model's value, not 0.5, since forgotten and test points differ.
    """
    return auc(-np.asarray(nll_forgotten), -np.asarray(nll_unseen))

