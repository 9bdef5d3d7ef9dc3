"""bench/peer.py without its peer (laplace-torch absent): the report's shape, and its KFAC factor check."""

import json
import sys
from types import SimpleNamespace

import numpy as np

from bench.peer import Case, factor_agreement, measure

TINY = (Case((4, 3), 30, ("kfac", "ekfac", "last_layer")), Case((2,), 20, ("full_ggn",)))


def test_without_the_peer_the_report_says_so_and_times_the_project_alone(monkeypatch):
    monkeypatch.setitem(sys.modules, "laplace", None)  # `import laplace` raises ImportError
    out = json.loads(json.dumps(measure(TINY, repeats=1)))
    assert out["peer"] == "not installed" and "laplace" in out["reason"]
    assert "targets" not in out and "versions" not in out
    assert [(c["hidden"], c["n"], c["n_params"]) for c in out["cases"]] == [([4, 3], 30, 21 * 4 + 5 * 3 + 4 * 3),
                                                                           ([2], 20, 21 * 2 + 3 * 3)]
    for case, entry in zip(TINY, out["cases"], strict=True):
        assert list(entry["structures"]) == list(case.structures)
        for row in entry["structures"].values():
            assert set(row) == {"project_seconds"} and row["project_seconds"] > 0


class _Tensor:
    """What the check reads of a torch tensor: detach().numpy()."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def detach(self):
        return self

    def numpy(self) -> np.ndarray:
        return self.array


def test_the_factor_check_is_zero_under_the_peers_conventions_and_sees_a_wrong_scale():
    from bayesunlearn.model.curvature import kronecker_factors
    from bench.peer import problem

    case = TINY[0]
    model, theta, x, y = problem(case)
    factors = kronecker_factors(model, theta, x, y)

    def peer(scale: float) -> SimpleNamespace:  # [B, A] per layer's weights (A averaged over records), [B] its bias
        pairs = [([_Tensor(scale * g), _Tensor(a[:-1, :-1] / case.n)], [_Tensor(scale * g)])
                 for a, g in zip(factors.inputs, factors.sensitivities, strict=True)]
        return SimpleNamespace(kfacs=[f for pair in pairs for f in pair])

    for layer in factor_agreement(factors, peer(1.0), case.n):
        assert max(layer.values()) < 1e-14
    for layer in factor_agreement(factors, peer(2.0), case.n):
        assert layer["inputs_up_to_scale"] < 1e-14 and layer["sensitivities_up_to_scale"] < 1e-14
        assert abs(layer["weight_block_scale"] - 1.0) < 1e-12 and abs(layer["bias_block"] - 1.0) < 1e-12
