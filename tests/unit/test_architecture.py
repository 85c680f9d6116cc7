"""The package's architecture: imports form layers, arrows only downward, and no import circle.

The import graph is read from the source (module-level *and* function-level imports), so an import hidden in a
function to dodge a circle still counts. A package whose ``__init__`` imports all its modules dynamically
(``fairrun.methods`` registers every method that way) imports each of them.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fairrun"

# Lowest first. A module may import its own layer and the layers below, never one above. Every module of the
# package belongs to exactly one layer (a new module must be placed here).
LAYERS = [
    # 0: the core (errors and their formatter, validation helpers, registries, devices, fingerprints, plain
    #    config sections, a study's schema) and run directories (atomic checksummed files, locks)
    {"core", "rundir", "evaluation.decision", "studies.spec"},
    # 1: measuring and reading data
    {"metrics", "data"},
    # 2: models, predictions and decision rules, cross-dataset evaluation, the data report, the console table
    {"models", "evaluation.predictions", "evaluation.transfer", "report.data_report", "report.console"},
    # 3: generative models (GAN, VAE) and their own training loops
    {"generative"},
    # 4: debiasing methods (and the DP accounting they share)
    {"methods"},
    # 5: the validated run config (assembles every registry's schema)
    {"config"},
    # 6: training, and reloading what was trained
    {"training", "evaluation.trained"},
    # 7: evaluating a finished run again
    {"evaluation.rerun", "evaluation"},
    # 8: sweeps, reports over many runs, and studies (a sweep and its report as one command); results from
    #    Python (fairrun.load_sweep reads runs as the report does)
    {"sweep", "report", "studies", "results_api"},
    # 9: the commands
    {"cli", "commands", "__main__"},
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """``module -> {fairrun modules it imports}``, at any depth of its code."""
    mods = modules()
    edges: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        source = path.read_text()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(source)):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else base
                           for alias in node.names]
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
        if is_package and "iter_modules" in source:  # imports every module of the package at run time
            edges[name] |= {m for m in mods if m.rpartition(".")[0] == name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int:
    """The layer of the longest entry of LAYERS that names ``module`` or a package above it."""
    parts = module.split(".")[1:]
    for depth in range(len(parts), 0, -1):
        unit = ".".join(parts[:depth])
        for number, layer in enumerate(LAYERS):
            if unit in layer:
                return number
    raise AssertionError(f"{module} is in no layer of tests/unit/test_architecture.py's LAYERS: place it")


def test_the_import_graph_is_read_from_the_source():
    edges = import_graph()
    assert "fairrun.core.errors" in edges["fairrun.cli"]
    assert "fairrun.methods.dpsgd" in edges["fairrun.methods"]  # dynamic: methods register themselves
    assert edges["fairrun.core.errors"] == set()


def test_no_import_circle():
    found = cycles(import_graph())
    assert not found, "import circles (module- or function-level imports): " + "; ".join(map(str, found))


def test_imports_only_point_down_the_layers():
    upward = []
    for module, imported in sorted(import_graph().items()):
        if module == "fairrun":
            continue
        for target in sorted(imported):
            if target != "fairrun" and layer_of(target) > layer_of(module):
                upward.append(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})")
    assert not upward, "\n".join(upward)


def test_the_bottom_layer_imports_nothing_above_it():
    for module, imported in import_graph().items():
        if module != "fairrun" and layer_of(module) == 0:
            assert all(layer_of(t) == 0 for t in imported if t != "fairrun"), (module, imported)


def test_every_package_is_listed_for_installation():
    """pyproject.toml lists the packages a wheel ships; a package left out works in an editable install only."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert packages - listed == set(), f"add to [tool.setuptools] packages in pyproject.toml: {packages - listed}"


def test_constraints_pin_every_dependency():
    """constraints.txt (the environment the documented numbers were measured in; CI installs with it) pins
    every dependency and extra of pyproject.toml to one version."""
    import re
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *[d for extra in project["optional-dependencies"].values() for d in extra]]
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in wanted}
    pins = {}
    for line in (PACKAGE.parent / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    assert names - set(pins) == set(), f"not pinned in constraints.txt: {sorted(names - set(pins))}"
    assert all(pins[n] for n in names)
