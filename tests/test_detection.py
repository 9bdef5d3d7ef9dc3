"""The audit's detection criterion is a likelihood-ratio test of stated size a and power b: an auditor who sees one
label per judged input detects a difference of n · KL ≥ (z₁₋ₐ + z_b)² / 2 nats (docs/methods.md)."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from scipy import optimize, stats

from bayesunlearn.io.detection import detection_threshold
from bayesunlearn.io.sections import Audit
from bayesunlearn.numerics.metrics import predictive_kl

SIZES_AND_POWERS = [(0.05, 0.95), (0.01, 0.99), (0.05, 0.8), (0.1, 0.9), (0.2, 0.5), (1e-6, 0.999)]


@pytest.mark.parametrize("size, power", SIZES_AND_POWERS)
def test_the_threshold_is_the_closed_form(size, power):
    z = NormalDist().inv_cdf  # an implementation of its own, not scipy's
    assert detection_threshold(size, power) == pytest.approx((-z(size) + z(power)) ** 2 / 2, rel=1e-12)  # z₁₋ₐ = −zₐ
    assert Audit(detection_size=size, detection_power=power).detectable_nats == detection_threshold(size, power)


def test_the_defaults_need_about_5_4_nats_and_a_test_of_power_equal_to_its_size_needs_none():
    assert Audit().detectable_nats == pytest.approx(2 * 1.6448536269514722 ** 2, rel=1e-12)  # 5.411 nats
    assert Audit(detection_size=0.2, detection_power=0.2).detectable_nats == pytest.approx(0.0, abs=1e-24)


def gaussian_shift(size: float, power: float, n: int, sigma: float = 0.7) -> tuple[float, float]:
    """The shift δ of N(δ, σ²) from N(0, σ²) at which n labels carry exactly the threshold: n · KL = (z₁₋ₐ+z_b)²/2,
    with KL the project's predictive KL; and that KL."""
    delta = sigma * np.sqrt(2 * detection_threshold(size, power) / n)
    kl = float(predictive_kl(np.array(0.0), np.array(sigma ** 2), np.array(delta), np.array(sigma ** 2)))
    return delta, kl


@pytest.mark.parametrize("size, power", SIZES_AND_POWERS)
@pytest.mark.parametrize("n", [1, 34, 1000])
def test_two_gaussians_at_the_threshold_give_the_stated_power_at_the_stated_size(size, power, n):
    """Between N(0, σ²) (the retrain) and N(δ, σ²) the log-likelihood ratio of n labels is exactly normal, mean
    ∓n · KL and variance 2n · KL: the Neyman–Pearson test of size a has power b, to rounding, at the threshold."""
    delta, kl = gaussian_shift(size, power, n)
    assert n * kl == pytest.approx(detection_threshold(size, power), rel=1e-12)
    sd = np.sqrt(2 * n * kl)
    critical = stats.norm.isf(size, loc=-n * kl, scale=sd)  # rejects H0 (the retrain) with probability a
    assert stats.norm.sf(critical, loc=n * kl, scale=sd) == pytest.approx(power, rel=1e-12, abs=1e-15)
    # the same test on the sample mean, the sufficient statistic
    sigma = 0.7
    mean_critical = stats.norm.isf(size, scale=sigma / np.sqrt(n))
    assert stats.norm.sf(mean_critical, loc=delta, scale=sigma / np.sqrt(n)) == pytest.approx(power, rel=1e-12)
    # below the threshold the power falls short of b
    assert stats.norm.sf(mean_critical, loc=0.9 * delta, scale=sigma / np.sqrt(n)) < power


def test_sampled_labels_reject_at_the_stated_rates():
    """Monte Carlo of the auditor's test on labels drawn from either Gaussian: size and power within four binomial
    standard errors of a and b."""
    size, power, n, sigma, replicates = 0.05, 0.95, 40, 0.7, 20_000
    delta, kl = gaussian_shift(size, power, n, sigma)
    rng = np.random.default_rng(7)

    def llr(labels: np.ndarray) -> np.ndarray:  # Σ log N(y; δ, σ²) − log N(y; 0, σ²)
        return np.sum((delta * labels - delta ** 2 / 2) / sigma ** 2, axis=1)

    critical = stats.norm.isf(size, loc=-n * kl, scale=np.sqrt(2 * n * kl))
    null = np.mean(llr(rng.normal(0.0, sigma, (replicates, n))) > critical)
    alternative = np.mean(llr(rng.normal(delta, sigma, (replicates, n))) > critical)
    for rate, target in ((null, size), (alternative, power)):
        assert abs(rate - target) <= 4 * np.sqrt(target * (1 - target) / replicates)


@pytest.mark.parametrize("n, p", [(1000, 0.3), (1000, 0.03), (200, 0.5), (5000, 0.1)])
def test_for_binary_labels_the_normal_approximation_holds_to_about_a_point(n, p):
    """A classifier's labels: at n · KL(Bernoulli(p) ‖ Bernoulli(q)) on the threshold, the exact (randomised)
    Neyman–Pearson test of size 0.05 has power within 0.015 of 0.95; the criterion is an approximation here."""
    size, power = 0.05, 0.95
    q = optimize.brentq(lambda q: n * (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)))
                        - detection_threshold(size, power), p + 1e-9, 0.999)
    k = np.arange(n + 1)
    null, alternative = stats.binom.pmf(k, n, p), stats.binom.pmf(k, n, q)
    tail = np.cumsum(null[::-1])[::-1]  # P(K ≥ k) under the retrain; the likelihood ratio grows with k as q > p
    c = int(np.argmax(tail <= size))
    gamma = (size - tail[c]) / null[c - 1]  # reject at k = c − 1 with this probability: exact size
    assert tail[c] + gamma * null[c - 1] == pytest.approx(size, rel=1e-9)
    assert abs(stats.binom.sf(c - 1, n, q) + gamma * alternative[c - 1] - power) < 0.015


def test_a_size_above_the_default_power_is_refused_even_when_the_power_is_left_out():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="0.95 is below detection_size 0.99"):
        Audit(detection_size=0.99)


@pytest.mark.parametrize("n, rate, size", [(1, 0.05, 0.05), (8, 0.05, 0.05), (40, 0.1, 0.01), (200, 0.05, 0.05),
                                           (1000, 0.3, 0.2)])
def test_the_membership_bound_is_the_exact_binomial_quantile(n, rate, size):
    from math import comb

    from bayesunlearn.io.detection import membership_bound

    def tail(k: int) -> float:  # P(X > k), X ~ Binomial(n, rate), summed exactly
        return sum(comb(n, j) * rate ** j * (1 - rate) ** (n - j) for j in range(k + 1, n + 1))

    bound = membership_bound(n, rate, size)
    assert tail(bound) <= size * (1 + 1e-12)  # a count above it is rarer than `size` under a retrain
    assert bound == 0 or tail(bound - 1) > size  # and it is the smallest such count


def test_a_posterior_that_tells_forgotten_records_apart_is_poor_even_when_the_predictive_is_immaterial():
    from bayesunlearn.io.detection import membership_problem

    audit, n = Audit(), 40  # α = 0.05, size 0.05: Binomial(40, 0.05) exceeds 4 with probability 0.048
    assert membership_problem(n, 4 / n, 0.0, audit.privacy_alpha, audit.detection_size) is None
    problem = membership_problem(n, 5 / n, 0.0, audit.privacy_alpha, audit.detection_size)
    assert problem.startswith("membership: 5 of 40 forgotten records told apart, above the 4")
    # a retrain that itself tells 10 % apart raises the bar: the test compares with what a retrain shows
    assert membership_problem(n, 5 / n, 0.1, audit.privacy_alpha, audit.detection_size) is None
    assert membership_problem(0, None, None, audit.privacy_alpha, audit.detection_size) is None
    limit = audit.detectable_nats
    assert audit.verdict(0.5, 2.0, 0.1 * limit, 0.1 * limit, membership=problem) == ("poor", [problem])
    assert audit.verdict(0.5, 2.0, 0.5 * limit, limit, membership=problem) == ("poor", [problem])
    assert audit.verdict(0.5, 2.0, 0.5 * limit, limit) == ("good", [])
