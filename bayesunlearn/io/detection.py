"""The audit's detection threshold: what a likelihood-ratio test of stated size and power needs."""


def detection_threshold(size: float, power: float) -> float:
    """The expected log-likelihood ratio n · KL (nats) at which a likelihood-ratio test of `size` has `power`:
    (z₁₋ₐ + z_b)² / 2 (docs/methods.md, "Detectable differences"). The test's statistic is approximately
    normal with mean ±n · KL and variance 2n · KL under the two hypotheses (exactly so for a shift between two
    Gaussians of one variance)."""
    from scipy.stats import norm

    return float((norm.isf(size) + norm.ppf(power)) ** 2 / 2.0)  # isf: z₁₋ₐ without rounding 1 − a
