"""DVC lineage covers the code: every project module a stage imports is among that stage's deps,
and the production chain the flows run is the chain dvc.yaml defines for `serve`.

The imports are found statically (every `import` in a module, also those inside functions, followed
through the project's packages), so nothing is imported and TensorFlow is never loaded.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from bayesunlearn.io import contracts, settings

PACKAGES = ("bayesunlearn", "lineage", "stages", "flows", "bench")


def module_file(name: str) -> Path | None:
    path = REPO / Path(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Project modules named by the import statements of one file."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(filter(None, [*parent, base]))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in found if name.split(".")[0] in PACKAGES and module_file(name)}


def closure(module: str) -> set[Path]:
    """Every project file `module` needs: itself, the modules it imports, and their packages' __init__."""
    todo, seen = [module], set()
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            prefix = ".".join(parts[:i])
            path = module_file(prefix)
            if path and path not in seen:
                seen.add(path)
                todo += sorted(imported_modules(path))
    return seen


PIPELINES = ("dvc.yaml", "study/dvc.yaml")  # every stage runs from the repository root (study's have wdir: ..)


def stages() -> dict[str, dict]:
    """The stages of every pipeline, foreach groups expanded with params.yaml (names as DVC gives them)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    out = {}
    for name, stage in ((n, s) for f in PIPELINES for n, s in yaml.safe_load((REPO / f).read_text())["stages"].items()):
        if "foreach" not in stage:
            out[name] = yaml.safe_load(resolve(yaml.safe_dump(stage), "", None, params))
            continue
        items = params[stage["foreach"].strip("${} ")]
        pairs = items.items() if isinstance(items, dict) else ((item, item) for item in items)
        for key, item in pairs:
            out[f"{name}@{key}"] = yaml.safe_load(resolve(yaml.safe_dump(stage["do"]), key, item, params))
    return out


def resolve(text: str, key: str, item, params: dict) -> str:
    def value(match: re.Match) -> str:
        path = match.group(1).strip().split(".")
        root = {"key": key, "item": item}.get(path[0], params.get(path[0]))
        for part in path[1:]:
            root = root[part]
        return str(root)

    return re.sub(r"\$\{([^}]+)\}", value, text)


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(REPO).as_posix()
    return any(relative == dep or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("name, stage", sorted(stages().items()))
def test_every_imported_project_module_is_a_dependency(name, stage):
    module = re.search(r"python -m ([\w.]+)", stage["cmd"]).group(1)
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    missing = sorted(p.relative_to(REPO).as_posix() for p in closure(module) if not covered(p, deps))
    assert not missing, f"stage {name} imports {missing} but does not list them in dvc.yaml deps"


def test_the_import_walk_sees_imports_inside_functions():
    """Stages import the numerics lazily (after the TF set-up); the walk must still follow them."""
    files = {p.relative_to(REPO).as_posix() for p in closure("stages.train")}
    assert {"bayesunlearn/model/training.py", "bayesunlearn/model/autodiff.py", "bayesunlearn/io/settings.py"} <= files


def test_the_production_chain_is_the_chain_dvc_yaml_defines_for_serve():
    gate = settings.load(REPO / "params.yaml").gate
    chain = contracts.production_stages(gate.method, gate.posterior)
    defined = stages()
    made_by = {}
    for name, stage in defined.items():
        for out in stage.get("outs", []) + stage.get("metrics", []):
            made_by[out if isinstance(out, str) else next(iter(out))] = name
    ancestors, todo = set(), ["serve"]
    while todo:
        name = todo.pop()
        if name in ancestors:
            continue
        ancestors.add(name)
        for dep in defined[name].get("deps", []):
            dep = dep if isinstance(dep, str) else next(iter(dep))
            todo += [made_by[o] for o in made_by if o == dep or dep.startswith(o.rstrip("/") + "/")
                     or o.startswith(dep.rstrip("/") + "/")]
    assert ancestors == {contracts.CHECK_STAGE, *chain}  # the params check runs first, and makes no artifact
