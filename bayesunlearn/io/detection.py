"""The audit's stated tests: the detection threshold of a likelihood-ratio test of stated size and power, and
the membership bound of the per-record test's count of forgotten records told apart."""


def detection_threshold(size: float, power: float) -> float:
    """The expected log-likelihood ratio n · KL (nats) at which a likelihood-ratio test of `size` has `power`:
    (z₁₋ₐ + z_b)² / 2 (docs/methods.md, "Detectable differences"). The test's statistic is approximately
    normal with mean ±n · KL and variance 2n · KL under the two hypotheses (exactly so for a shift between two
    Gaussians of one variance)."""
    from scipy.stats import norm

    return float((norm.isf(size) + norm.ppf(power)) ** 2 / 2.0)  # isf: z₁₋ₐ without rounding 1 − a


def membership_bound(n: int, rate: float, size: float) -> int:
    """The most of `n` forgotten records the per-record membership test tells apart under a model drawn like a
    retrain, at level `size`: the (1 − size) quantile of Binomial(n, rate), `rate` being the share a retrain
    shows. A count above it has probability at most `size` under such a model (a one-sided binomial test)."""
    from scipy.stats import binom

    return int(binom.isf(size, n, rate))  # the smallest k with P(X > k) ≤ size


def membership_problem(n_forgotten: int, told_apart: float | None, told_apart_retrain: float | None,
                       alpha: float, size: float) -> str | None:
    """Why the per-record membership test finds the judged posterior worse than a retrain, or None: more of the
    `n_forgotten` records told apart (share `told_apart`) than a model drawn like the reference retrain shows
    at level `size`, at the retrain's share or the test's false-positive rate `alpha`, whichever is larger."""
    if told_apart is None or told_apart_retrain is None or n_forgotten == 0:
        return None
    told = round(told_apart * n_forgotten)
    bound = membership_bound(n_forgotten, max(alpha, told_apart_retrain), size)
    if told <= bound:
        return None
    return (f"membership: {told} of {n_forgotten} forgotten records told apart, above the {bound} a retrain "
            f"shows at level {size:g} (the reference retrain: {told_apart_retrain:.1%})")
