"""params.yaml as typed, validated settings: loaded once per process, checked as a whole before any work.

Every section is a pydantic model in strict mode with unknown keys forbidden:
a typo (`requests_dri`), a string where a number belongs (`test_fraction: "abc"`)
or a fraction where an integer belongs (`seed: 1.5`) stops the process with a
message that names the key. Cross-references (the gate's method, the methods'
posterior kinds, the study's and sweep's methods) are checked with the rest,
so a wrong name fails in the first second, not as a missing file later.

Pydantic (already installed with Prefect) rather than hand-written checks:
one declaration per key gives its type, range, default and error message
(the sections are in sections.py). TensorFlow-free, so light tools validate
quickly.
"""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from bayesunlearn.errors import ConfigError, Exit
from bayesunlearn.io import files
from bayesunlearn.io.sections import (
    VI, Audit, Divide, Evaluate, Gate, Laplace, Ledger, Method, MethodName, Model, Prepare, RealStudy, Retrain,
    Schedule, Section, Split, Study, Sweep, Train, VariationalUnlearning,
)
from bayesunlearn.kinds import KINDS, KindName

PARAMS = Path("params.yaml")
MAX_PARAMS_BYTES = 1_000_000
MAX_PARAMS_DEPTH = 16  # collections within collections; the shipped file nests 5 (prepare.two_clusters.clusters)
LIKELIHOOD_OF = {"real": "gaussian", "binary": "bernoulli", "categorical": "categorical"}  # of each target kind


class Settings(Section):
    """The whole of params.yaml."""

    prepare: Prepare
    split: Split = Split()
    model: Model
    train: Train
    retrain: Retrain
    laplace: Laplace = Laplace()
    vi: VI = VI()
    posteriors: Annotated[list[KindName], Field(min_length=1)]
    methods: Annotated[dict[MethodName, Method], Field(min_length=1)]
    gate: Gate
    audit: Audit = Audit()
    ledger: Ledger = Ledger()
    schedule: Schedule = Schedule()
    evaluate: Evaluate = Evaluate()
    study: Study
    real_study: RealStudy = RealStudy()
    sweep: Sweep

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        problems = []
        configured = sorted(self.methods)
        if self.gate.method not in self.methods:
            problems.append(f"gate.method: {self.gate.method!r} is not a configured method{_close(self.gate.method, configured)}; "
                            f"configured: {configured}")
        elif self.methods[self.gate.method].posterior != self.gate.posterior:
            problems.append(f"gate.posterior: {self.gate.posterior!r} must be the posterior of gate.method "
                            f"{self.gate.method!r}, which is {self.methods[self.gate.method].posterior!r}")
        if len(set(self.posteriors)) != len(self.posteriors):
            problems.append(f"posteriors: {self.posteriors} lists a kind twice")
        for name, method in self.methods.items():
            if method.posterior not in self.posteriors:
                problems.append(f"methods.{name}.posterior: {method.posterior!r} is not fitted; add it to "
                                f"`posteriors` ({self.posteriors})")
            at_map = KINDS[method.posterior].family == "laplace"
            if isinstance(method, Divide) and method.refine and not at_map:
                problems.append(f"methods.{name}.refine: refining takes Newton steps from a MAP; the VI "
                                f"posterior {method.posterior!r} is centred elsewhere (use refine: 0)")
            if isinstance(method, Divide) and method.mean_update == "cg" and not at_map:
                problems.append(f"methods.{name}.mean_update: cg takes the GGN's Newton step at a MAP; the VI "
                                f"posterior {method.posterior!r} is centred elsewhere (use newton, damped or none)")
        for section in ("study", "real_study", "sweep"):
            unknown = [m for m in getattr(self, section).methods if m not in self.methods]
            if unknown:
                problems.append(f"{section}.methods: {unknown} are not configured methods; configured: {configured}")
        if self.real_study.methods and self.gate.method not in self.real_study.methods:
            problems.append(f"real_study.methods: must include the production method {self.gate.method!r} "
                            "(the study judges its gate)")
        taken = [m for m in self.methods if re.fullmatch(r"finetune_\d+", m)]
        if taken:
            problems.append(f"methods: {taken} are names of the real-data study's fine-tuning baselines; rename them")
        kind = self.prepare.target_kind
        if self.model.likelihood != LIKELIHOOD_OF[kind]:
            problems.append(f"model.likelihood: {self.model.likelihood!r} does not fit the {kind} "
                            f"target of prepare.source {self.prepare.source!r}; use {LIKELIHOOD_OF[kind]}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def method(self, name: str) -> Divide | VariationalUnlearning:
        if name not in self.methods:
            raise ConfigError(f"method {name!r} is not configured; params.yaml methods are {sorted(self.methods)}.")
        return self.methods[name]

    def chosen_methods(self, names: list[str]) -> dict[str, Divide | VariationalUnlearning]:
        """The named methods in the order named; every configured method when `names` is empty."""
        return {n: self.methods[n] for n in names} if names else dict(self.methods)


def _close(word: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(word, candidates, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --- loading ----------------------------------------------------------------------------------
def _yaml_load(text: str) -> Any:
    """YAML 1.2, as DVC reads params.yaml (so `1e-6` is a number, `yes` a string); duplicate keys refused.

    The event stream is checked before anything is built, and stops at the first problem: aliases expand
    when validated (a 16 KB file of 2,000 references to a 2,000-item list took 26 s to refuse; 9 nested
    levels of them hold 387 million strings), and deep nesting exhausts any recursive reader (it crashes
    ruamel's C loader and DVC's; a 69 KB `[[[…]]]` is refused here in under a second)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent

    yaml = YAML(typ="safe", pure=True)  # pure Python: the C loader crashes the process on deep nesting
    depth = 0
    for event in yaml.parse(text):
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None):
            raise ValueError("anchors and aliases (&name, *name) are not allowed in params.yaml")
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_PARAMS_DEPTH:
                raise ValueError(f"nested more than {MAX_PARAMS_DEPTH} levels deep")
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    return YAML(typ="safe", pure=True).load(text)


METHOD_MODELS = {"divide": Divide, "eubo": VariationalUnlearning, "reverse_kl": VariationalUnlearning}


def _describe(error: dict) -> str:
    """One readable line for a pydantic error: the dotted key, what is wrong, and the value given."""
    loc = [str(part) for part in error["loc"]]
    model = None
    if len(loc) > 2 and loc[0] == "methods" and loc[2] in METHOD_MODELS:
        model = METHOD_MODELS[loc.pop(2)]  # the discriminator tag pydantic inserts names the method model
    key = ".".join(loc)
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        known = sorted(model.model_fields) if model else _known_keys(loc[:-1])
        return f"{key}: unknown key{_close(loc[-1], known)} (allowed here: {', '.join(known)})"
    if kind == "missing":
        return f"{key}: missing"
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        return message if not key else f"{key}: {message}"
    given = error.get("input")
    shown = repr(given) if not isinstance(given, dict | list) else type(given).__name__
    return f"{key}: {message} (got {shown})"


def _known_keys(loc: list[str]) -> list[str]:
    """The keys allowed at a location of params.yaml, found by walking the settings models."""
    model: Any = Settings
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        model = field.annotation if field is not None else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return sorted(model.model_fields)


def parse_section(cls: type[Section], raw: Any, key: str) -> Section:
    """One section of params.yaml (e.g. `model`), checked alone; problems are named `key.field`."""
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        lines = [_describe({**e, "loc": (key, *e["loc"])}) for e in err.errors(include_url=False)]
        raise ConfigError(f"params.yaml: {'; '.join(lines)}") from None


def parse(raw: Any, source: str = "params.yaml") -> Settings:
    """Validate a parsed params.yaml; every problem is named by its dotted key in one ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: must be a mapping of sections (prepare, split, model, ...), "
                          f"got {type(raw).__name__}.")
    try:
        return Settings.model_validate(raw)
    except ValidationError as err:
        lines = [_describe(e) for e in err.errors(include_url=False)]
        shown = "; ".join(lines[:6]) + (f"; and {len(lines) - 6} more" if len(lines) > 6 else "")
        raise ConfigError(f"{source}: {shown}") from None


def load(path: str | Path = PARAMS) -> Settings:
    """The settings in `path` (params.yaml), parsed once per process and file version."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror}); restore it from the repository.") from None
    return _load(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load(path: Path, _mtime: int, _size: int) -> Settings:
    try:
        text = files.read_regular(path, MAX_PARAMS_BYTES, follow_symlinks=True).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text.") from None
    except (OSError, ValueError) as err:  # missing, a FIFO or device, over the cap
        raise ConfigError(f"{path}: cannot be read as params.yaml ({err}).") from None
    try:
        raw = _yaml_load(text)
    except Exception as err:  # ruamel's parser and duplicate-key errors share no useful base class
        first = str(err).strip().splitlines()
        raise ConfigError(f"{path}: not valid YAML ({' '.join(first[:3])}).") from None
    return parse(raw, str(path.name))


def update_params(path: str | Path, changes: dict[str, Any]) -> None:
    """Set dotted keys (`prepare.csv.path`) in params.yaml, as `dvc exp run -S` does: comments, order,
    quoting and layout of every other line are kept, and the result must still be valid settings."""
    from io import StringIO

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    from bayesunlearn.io import atomic

    path = Path(path)
    load(path)  # the file as it is must be valid settings: every read problem is a ConfigError here
    yaml = YAML(pure=True)  # round-trip mode
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    yaml.indent(mapping=2, sequence=4, offset=2)  # the layout of the project's params.yaml
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    document = yaml.load(path.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = document
        for part in parents:
            if not isinstance(node, dict):
                raise ConfigError(f"{path}: cannot set {dotted}: only keys of sections can be set")
            node = node.setdefault(part, CommentedMap())  # an optional section left out (prepare.csv) is created
        if not isinstance(node, dict):
            raise ConfigError(f"{path}: cannot set {dotted}: only keys of sections can be set")
        node[last] = value
    out = StringIO()
    try:
        yaml.dump(document, out)
    except Exception as err:  # ruamel's representer errors share no useful base class
        raise ConfigError(f"{path}: cannot write {sorted(changes)} ({type(err).__name__})") from None
    parse(_yaml_load(out.getvalue()), path.name)  # never write settings that would not load
    atomic.write_text(path, out.getvalue())


# The `params` stage's output: constant, so a valid change of params.yaml invalidates no other stage.
CHECK_STAMP = "metrics/params_check.json"
STAMP_TEXT = '{"params.yaml": "checked by the params stage (python -m bayesunlearn.io.settings)"}\n'


def main(argv: list[str] | None = None) -> int:
    """`python -m bayesunlearn.io.settings [PATH] [--stamp FILE]`: check params.yaml and say what is wrong.

    `--stamp` (the DVC `params` stage, upstream of every other stage) writes FILE when the check passes:
    a failed check stops `dvc repro` before any stage deletes its outputs."""
    import argparse
    import sys

    from bayesunlearn.io import atomic

    parser = argparse.ArgumentParser(prog="python -m bayesunlearn.io.settings", description=main.__doc__)
    parser.add_argument("path", nargs="?", type=Path, default=PARAMS, help="the file to check (default: params.yaml)")
    parser.add_argument("--stamp", type=Path, help=f"write this file when the check passes (the stage: {CHECK_STAMP})")
    args = parser.parse_args(argv)
    try:
        settings = load(args.path)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return Exit.INPUT
    if args.stamp is not None:
        atomic.write_text(args.stamp, STAMP_TEXT)
    print(f"{args.path}: valid ({len(settings.methods)} methods, {len(settings.posteriors)} posterior kinds, "
          f"production method {settings.gate.method})")
    return Exit.OK


if __name__ == "__main__":
    raise SystemExit(main())
