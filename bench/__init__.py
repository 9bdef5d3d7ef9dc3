"""Benchmarks (`make bench`): machine-readable JSON, ratios measured side by side in one process."""


def regression_model(section, hidden, input_dim: int):
    """The model of params.yaml `model` with other hidden widths, on a real target: the benchmarks that use it
    (scale, structures, the UCI protocol) fit real-valued data whatever likelihood the workspace is set to."""
    from bayesunlearn.model.likelihood import build_model

    return build_model(section.model_copy(update={"hidden": list(hidden), "likelihood": "gaussian"}), input_dim)
