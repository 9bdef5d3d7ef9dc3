"""Curvature fits side by side with laplace-torch (the peer), on the same network and data, in one process.

Cases (`CASES`): KFAC, EK-FAC and the last layer on a 20-300-300-3 tanh network (97,503 parameters), and the
full GGN on a 20-24-24-3 one (1,179 parameters: the peer's full GGN takes one GGN-vector product per parameter,
each a pass over the data), each on synthetic records x ~ N(0, I₂₀) with uniform labels of 3 classes and θ a
seeded LeCun-normal draw (a fit's cost does not depend on how well θ fits). Per structure, the medians of
`REPEATS` timings of the project's `fit_laplace` (the curvature and the posterior it builds) and of the peer's
`Laplace(...)` and `.fit(loader)` with each of its GGN backends (`BACKENDS`; float64, batches of `PEER_BATCH`
records) on a torch `nn.Sequential` holding the same weights; `ratio` = project / the fastest backend's time (≤ 1:
at least as fast), `ratio_default_backend` against the peer's default. laplace-torch has no EK-FAC: that row's
peer is its KFAC fit (EK-FAC is KFAC plus one more pass over the data).
Sanity: the two networks' outputs agree, and per layer KFAC's factors agree with the peer's up to its
conventions (weights stored (out, in); the bias a factor of its own; each factor's scale), as relative
differences. Without torch and laplace-torch (the optional extra `peer`) it prints {"peer": "not installed", ...}
with the project's times alone. `python -m bench.peer` prints the JSON; `make bench` adds it as "peer".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np

INPUTS, CLASSES = 20, 3
REPEATS = 3
PEER_BATCH = 1000
BACKENDS = ("CurvlinopsGGN", "BackPackGGN", "AsdlGGN")  # the peer's GGN backends, its default first
PEER_STRUCTURE = {"kfac": ("all", "kron"), "ekfac": ("all", "kron"), "last_layer": ("last_layer", "full"),
                  "full_ggn": ("all", "full")}  # the peer's (subset_of_weights, hessian_structure) per kind


@dataclass(frozen=True)
class Case:
    """One network and data size, and the structures fitted on it."""

    hidden: tuple[int, ...]
    n: int
    structures: tuple[str, ...]


CASES = (Case((300, 300), 20_000, ("kfac", "ekfac", "last_layer")), Case((24, 24), 5_000, ("full_ggn",)))


def problem(case: Case, seed: int = 0):
    """The categorical model, θ and the records of a case."""
    from bayesunlearn.model.likelihood import RegressionModel
    from bayesunlearn.model.network import MLPSpec

    spec = MLPSpec(INPUTS, case.hidden, "tanh", CLASSES)
    rng = np.random.default_rng(seed)
    theta = np.concatenate([np.concatenate([rng.normal(0, fan_in ** -0.5, fan_in * fan_out), np.zeros(fan_out)])
                            for fan_in, fan_out in spec.shapes])
    return RegressionModel(spec, 1.0, 1.0, "categorical"), theta, rng.normal(size=(case.n, INPUTS)), \
        rng.integers(0, CLASSES, case.n)


def median_seconds(fit, repeats: int) -> tuple[float, object]:
    """The median wall time of `repeats` calls of `fit`, and the last call's result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def peer_modules():
    """(torch, laplace, versions), or None with the import error when the peer is not installed."""
    try:
        import laplace
        import torch
    except ImportError as err:
        return None, str(err)
    from importlib.metadata import version

    names = ("laplace-torch", "torch", "curvlinops-for-pytorch", "backpack-for-pytorch", "asdfghjkl")
    return (torch, laplace, {**{name: version(name) for name in names}, "torch_threads": torch.get_num_threads()}), ""


def torch_network(torch, model, theta: np.ndarray):
    """An nn.Sequential (float64) with the project's weights: torch's Linear holds W as (out, in)."""
    from bayesunlearn.model.network import layers

    modules = []
    for number, (w, b) in enumerate(layers(model.spec, theta)):
        linear = torch.nn.Linear(*w.shape, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            linear.bias.copy_(torch.from_numpy(b.copy()))
        modules += [linear] + ([torch.nn.Tanh()] if number < len(model.spec.shapes) - 1 else [])
    return torch.nn.Sequential(*modules)


def factor_agreement(factors, kron, n: int) -> list[dict]:
    """Per layer, relative differences between the project's KFAC factors (A_l with the bias row and column,
    G_l: the weights' block is A ⊗ G / n, the bias's G) and the peer's ([B, A] for the weights, [B] for the
    bias): A and G each up to scale, the weights' block's scale, and the bias's block."""
    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    out = []
    for layer, (a, g) in enumerate(zip(factors.inputs, factors.sensitivities, strict=True)):
        peer_g, peer_a = (f.detach().numpy() for f in kron.kfacs[2 * layer])
        peer_bias = kron.kfacs[2 * layer + 1][0].detach().numpy()
        weights, size = a[:-1, :-1], np.linalg.norm
        out.append({"inputs_up_to_scale": rel(peer_a / size(peer_a), weights / size(weights)),
                    "sensitivities_up_to_scale": rel(peer_g / size(peer_g), g / size(g)),
                    "weight_block_scale": abs(size(peer_a) * size(peer_g) / (size(weights) * size(g) / n) - 1.0),
                    "bias_block": rel(peer_bias, g)})
    return out


def peer_fit(torch, laplace, network, x: np.ndarray, y: np.ndarray, kind: str, backend: str):
    """A call that builds the peer's Laplace of the kind's structure on a backend and fits it, returning it."""
    subset, structure = PEER_STRUCTURE[kind]
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y).long())
    loader = torch.utils.data.DataLoader(data, batch_size=PEER_BATCH)

    def fit():
        posterior = laplace.Laplace(network, "classification", subset_of_weights=subset,
                                    hessian_structure=structure, prior_precision=1.0,
                                    backend=getattr(laplace.curvature, backend))
        posterior.fit(loader)
        return posterior

    return fit


def measure(cases: tuple[Case, ...] = CASES, repeats: int = REPEATS) -> dict:
    """Per case and structure the project's fit time, and the peer's and the ratio when it is installed."""
    import warnings

    from bayesunlearn.model.curvature import kronecker_factors
    from bayesunlearn.model.network import outputs
    from bayesunlearn.posteriors.laplace import fit_laplace

    peer, reason = peer_modules()
    out: dict = {"peer": "installed" if peer else "not installed", "repeats": repeats, "peer_batch": PEER_BATCH,
                 "cases": []}
    out.update({"versions": peer[2]} if peer else {"reason": reason})
    for case in cases:
        model, theta, x, y = problem(case)
        entry: dict = {"hidden": list(case.hidden), "n_params": model.spec.n_params, "n": case.n, "structures": {}}
        if peer:
            torch, laplace, _ = peer
            network = torch_network(torch, model, theta)
            with torch.no_grad():
                theirs = network(torch.from_numpy(x[:256])).numpy().ravel()
            entry["max_output_difference"] = float(np.abs(theirs - outputs(model.spec, theta, x[:256])).max())
        peer_times: dict = {}  # EK-FAC's peer is KFAC's: timed once
        for kind in case.structures:
            seconds, _ = median_seconds(lambda kind=kind: fit_laplace(model, theta, x, y, kind), repeats)
            row: dict = {"project_seconds": seconds}
            if peer:
                subset, structure = PEER_STRUCTURE[kind]
                for backend in BACKENDS:
                    if (subset, structure, backend) not in peer_times:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            peer_times[subset, structure, backend] = median_seconds(  # a network per backend:
                                peer_fit(torch, laplace, torch_network(torch, model, theta), x, y, kind, backend),
                                repeats)                                     # BackPACK's hooks stay on it
                times = {backend: peer_times[subset, structure, backend][0] for backend in BACKENDS}
                fastest = min(times, key=times.get)
                row.update({"peer": f"{subset}/{structure}", "peer_seconds": times, "peer_fastest": fastest,
                            "ratio": seconds / times[fastest], "ratio_default_backend": seconds / times[BACKENDS[0]]})
                if kind == "kfac":  # against the default backend's factors
                    row["factor_agreement"] = factor_agreement(kronecker_factors(model, theta, x, y),
                                                               peer_times[subset, structure, BACKENDS[0]][1].H_facs,
                                                               case.n)
            entry["structures"][kind] = row
        out["cases"].append(entry)
    if peer:
        ratios = {kind: row["ratio"] for entry in out["cases"] for kind, row in entry["structures"].items()}
        out["targets"] = {"fit_at_least_as_fast_as_laplace_torch": {"met": all(r <= 1.0 for r in ratios.values()),
                                                                    "ratios": ratios}}
    out["load_average_end"] = os.getloadavg()[0]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timings per fit (median)")
    parser.add_argument("--structures", nargs="+", help="only these structures")
    args = parser.parse_args(argv)
    cases = tuple(Case(c.hidden, c.n, tuple(k for k in c.structures if not args.structures or k in args.structures))
                  for c in CASES)
    print(json.dumps(measure(tuple(c for c in cases if c.structures), args.repeats), indent=2))


if __name__ == "__main__":
    main()
