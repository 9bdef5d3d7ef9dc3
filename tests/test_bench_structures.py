"""bench/structures.py's targets: judged from the rows, the worse deletion deciding, met or not."""

from bench.structures import MODES, targets, variants


def quality(gains: dict[str, tuple[float, float]]) -> dict:
    """structure_quality rows with these (random, segment) gains; every other row far worse than the full GGN."""
    out = {}
    for i, mode in enumerate(MODES):
        full = gains["full_ggn"][i]
        out[mode] = {name: {"gain": gains.get(name, (100.0, 100.0))[i], "mean_update": options["mean_update"],
                            "speedup": 10.0} for name, (_, options) in variants().items()}
        for row in out[mode].values():
            row["gain_over_full_ggn"] = row["gain"] / full
    return out


def test_the_best_scalable_row_is_judged_on_its_worse_deletion():
    t = targets(quality({"full_ggn": (0.2, 0.2), "last_layer": (0.1, 0.4), "kfac_cg": (0.29, 0.29),
                         "subnetwork": (0.1, 0.3)}))
    best = t["best_scalable_within_1_5x_full_ggn_10k"]
    assert (best["row"], best["met"]) == ("kfac_cg", True)
    assert best["worst_gain_over_full_ggn"] == 0.29 / 0.2
    newton = t["best_newton_step_within_1_5x_full_ggn_10k"]  # last_layer's 0.1 on random does not save it
    assert (newton["row"], newton["met"], newton["segment"]["gain"]) == ("subnetwork", True, 0.3)
    assert t["subnetwork_at_least_last_layer_10k"]["met"] is True


def test_targets_not_met_say_so():
    t = targets(quality({"full_ggn": (0.2, 0.2), "last_layer": (0.1, 0.4), "subnetwork": (0.05, 0.5)}))
    best = t["best_scalable_within_1_5x_full_ggn_10k"]
    assert (best["row"], best["met"], best["worst_gain_over_full_ggn"]) == ("last_layer", False, 2.0)
    assert t["subnetwork_at_least_last_layer_10k"]["met"] is False  # better on random, worse on segment
