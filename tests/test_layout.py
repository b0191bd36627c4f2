"""The shape of the code: every module stays small, and no modules import each other.

Why: a newcomer should be able to read any module in one sitting, and follow the
layers (docs/architecture.md) downwards without meeting the same module twice. The
check reads the source with `ast`, so it sees lazy imports inside functions too, and
treats `engines/`, `train/` and `benchmarks/` as the packages they install as.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Folder -> the package it installs as (pyproject.toml's package-dir).
PACKAGES = {"streamfix": "streamfix", "engines": "streamfix.engines", "train": "streamfix.train",
            "benchmarks": "streamfix.benchmarks"}
MAX_LINES = 400

# Which layer may import which (docs/architecture.md draws the same picture). Keys and
# values are the packages under streamfix; "streamfix" itself is the public API.
LOWER = {
    "core": set(),
    "engines": {"core"},
    "media": {"core"},
    "restore": {"core", "engines", "media"},
    "quality": {"core", "engines", "media", "restore", "pipeline"},  # eval measures what `run` delivers
    "pipeline": {"core", "engines", "media", "restore"},
    "serve": {"core", "engines", "media", "restore", "pipeline"},
    # Scale-out: they use the layers below through their public names (streamfix.SharedEngine, ...).
    "segments": {"core", "engines", "media", "restore", "pipeline", "serve", "streamfix"},
    "fleet": {"core", "engines", "media", "restore", "pipeline", "serve", "segments", "streamfix"},
    "train": {"core", "engines", "media", "restore", "quality"},
    "benchmarks": {"core", "engines", "media", "restore", "quality", "pipeline", "serve", "train", "segments", "fleet"},
    "streamfix": {"core", "engines", "restore", "pipeline", "serve"},
}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = (path, path.name == "__init__.py")
    return found


MODULES = _modules()


def _imports(name: str, path: Path, is_package: bool) -> set[str]:
    """The project modules `name` imports (a `from package import module` counts as
    importing the module; a package's own __init__ is not counted for its children)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [f"{target}.{alias.name}" for alias in node.names] + [target]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in MODULES:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
                break
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: _imports(name, path, is_pkg) for name, (path, is_pkg) in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules along it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_over_400_lines():
    long = {str(path.relative_to(ROOT)): n for path, _ in MODULES.values()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_no_import_cycles():
    cycle = _cycle(import_graph())
    assert cycle is None, "modules import each other: " + " -> ".join(cycle)


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "streamfix"


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, deps in sorted(graph.items()):
        layer = _layer(module)
        if layer == "cli" or layer not in LOWER and layer != "weights":
            continue
        for dep in sorted(deps):
            target = _layer(dep)
            if target != layer and target not in LOWER.get(layer, set()):
                found.append(f"{module} imports {dep} ({layer} may use only: {sorted(LOWER[layer]) or 'nothing'})")
    return found


def test_every_package_is_in_a_layer():
    layers = {_layer(m) for m in MODULES} - {"cli"}
    assert layers <= set(LOWER), f"packages missing from LOWER (and docs/architecture.md): {layers - set(LOWER)}"


def test_layers_import_only_downwards():
    violations = layer_violations(import_graph())
    assert not violations, "\n".join(violations)


def test_the_layer_check_sees_an_upward_import():
    """The check itself must be able to fail: media must not use restore."""
    assert layer_violations({"streamfix.media.reader": {"streamfix.restore.restorer"}})


def test_the_cycle_check_sees_a_cycle():
    """The check itself must be able to fail."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
