"""The package's imports (function-level ones included) form layers without cycles: a module imports only
from its own layer or the layers below it, and only the presentation layer imports typer or rich.

The checker is also run on a synthetic package with a cycle hidden in a function-level import and an
upward import, to show that it fails on them.
"""

from __future__ import annotations

import ast
from pathlib import Path

from harness.paths import PROJECT_ROOT

# Bottom to top. A module belongs to the first layer naming it or one of its parent packages.
LAYERS: list[tuple[str, list[str]]] = [
    ("records", ["harness", "harness.errors", "harness.paths", "harness.records", "harness.metric_registry",
                 "harness.envinfo", "harness.specs_data", "harness.runfolder", "harness.store",
                 "harness.distributed"]),
    ("specs", ["harness.specs"]),
    ("registry", ["harness.registry"]),
    ("plan", ["harness.plan"]),
    ("weights", ["harness.weights"]),
    ("components", ["harness.models", "harness.data", "harness.methods", "harness.micro", "harness.prompts"]),
    ("stages", ["harness.training", "harness.sampling", "harness.metrics", "harness.accounting"]),
    ("runner", ["harness.runner"]),
    ("analysis", ["harness.analysis"]),
    ("commands", ["harness.commands"]),
    ("presentation", ["harness.cli", "harness.report", "harness.progress"]),
]
PRESENTATION_ONLY = ("typer", "rich")


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` under ``root``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(modules: dict[str, Path], package: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per module: the package's modules it imports (at any depth of the file), and the other top-level
    packages it imports."""
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    inside: dict[str, set[str]] = {}
    outside: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets, external = set(), set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                bases = [(alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                bases = [(base, [alias.name for alias in node.names])]
            else:
                continue
            for base, names in bases:
                if base.split(".")[0] != package:
                    external.add(base.split(".")[0])
                    continue
                for item in names or [""]:
                    full = f"{base}.{item}" if item else base
                    targets.add(full if full in modules else resolve(base))
        targets.discard(name)
        targets.discard(None)
        inside[name], outside[name] = targets, external
    return inside, outside


def layer_of(module: str, layers: list[tuple[str, list[str]]]) -> int:
    for index, (_, prefixes) in enumerate(layers):
        if any(module == p or ("." in p and module.startswith(p + ".")) for p in prefixes):
            return index
    raise AssertionError(f"module {module} is in no layer: add it to LAYERS")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def violations(root: Path, package: str, layers: list[tuple[str, list[str]]],
               presentation: tuple[str, ...] = ()) -> list[str]:
    """Every upward import, the first import cycle found, and every non-presentation use of typer/rich."""
    modules = module_files(root, package)
    graph, external = imports(modules, package)
    problems = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module, layers)
        for target in sorted(targets):
            theirs = layer_of(target, layers)
            if theirs > mine:
                problems.append(f"upward import: {module} ({layers[mine][0]}) -> {target} ({layers[theirs][0]})")
        top = layers[-1][1]
        for name in sorted(external[module] & set(PRESENTATION_ONLY)):
            if presentation and not any(module == p or module.startswith(p + ".") for p in top):
                problems.append(f"{module} imports {name}: only the presentation layer may")
    cycle = find_cycle(graph)
    if cycle:
        problems.append("import cycle: " + " -> ".join(cycle))
    return problems


def test_harness_has_layers_without_cycles() -> None:
    assert violations(PROJECT_ROOT, "harness", LAYERS, PRESENTATION_ONLY) == []


def test_checker_fails_on_a_hidden_cycle_and_an_upward_import(tmp_path: Path) -> None:
    package = tmp_path / "toy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from toy.high import g  # hidden in a function\n    return g\n")
    (package / "high.py").write_text("from toy import low\n\ndef g():\n    return low\n")
    (package / "mid.py").write_text("import rich\n")
    layers = [("bottom", ["toy", "toy.low", "toy.mid"]), ("top", ["toy.high"])]
    problems = violations(tmp_path, "toy", layers, PRESENTATION_ONLY)
    assert "upward import: toy.low (bottom) -> toy.high (top)" in problems
    assert "import cycle: toy.high -> toy.low -> toy.high" in problems
    assert "toy.mid imports rich: only the presentation layer may" in problems
