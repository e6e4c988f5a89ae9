"""The shape of the code: the layers declared in pyproject.toml hold, no module imports itself back through others,
and every package says what it owns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_declared_layers_hold():
    """`lint-imports` checks pyproject.toml's contract: a module may import only from the layers below its own."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.fail(f"lint-imports is not installed next to {sys.executable}; run `make setup` (requirements-dev.txt)")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _graph() -> dict[str, set[str]]:
    import grimp

    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("workbench", exclude_type_checking_imports=True, cache_dir=None)
    modules = set(graph.modules)
    return {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in sorted(modules)}


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle a depth-first walk meets, each as the chain of modules that closes it."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def walk(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                walk(target)
        stack.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            walk(module)
    return cycles


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back_through_others():
    """Imports inside functions count too: a cycle hidden that way is still a cycle."""
    cycles = find_cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(chain) for chain in cycles)


def test_every_package_says_what_it_owns_and_may_import():
    packages = [p.parent for p in (ROOT / "workbench").glob("*/__init__.py") if p.parent.name != "ui"]
    stages = {"data", "methods", "models", "train", "runs", "generate", "evaluate", "arena"}
    assert {p.name for p in packages} >= stages
    for package in packages:
        text = (package / "__init__.py").read_text(encoding="utf-8")
        assert text.startswith('"""') and len(text) > 200, f"{package.name}/__init__.py needs its docstring"
        assert "import" in text.lower(), f"{package.name}/__init__.py should say what the package may import"


def test_no_list_of_method_or_peft_type_names_outside_the_registry():
    """What a method is (how it is served, whether it merges, what DPO trains) lives in its MethodSpec: code outside
    workbench/methods/ asks the spec, never a list of names. The one name allowed is the config's default method."""
    import ast

    from workbench.methods.registry import METHODS

    names = set(METHODS) | {spec.peft_type for spec in METHODS.values() if spec.peft_type}
    allowed = {("workbench/config.py", "lora")}  # MethodConfig's default
    found = []
    for path in sorted((ROOT / "workbench").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        if where.startswith("workbench/methods/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names and (where, node.value) not in allowed:
                found.append(f"{where}:{node.lineno}: {node.value!r}")
    assert not found, "method or peft-type names outside the registry:\n" + "\n".join(found)


def test_no_test_module_imports_another():
    """Shared test helpers live in conftest.py (fixtures) and appdriver.py (driving the app), not in test modules."""
    import ast

    found = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.name}:{node.lineno}: {name}" for name in names if name.startswith("test_")]
    assert not found, "test modules importing test modules:\n" + "\n".join(found)
