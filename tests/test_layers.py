"""Layers import downwards only, and ``import urbanflow`` stays free of torch.

Order, lowest first: errors (and version), graph, data, training, models, evaluation and
decisions,
serving, cli. ``models`` builds on ``training`` (networks are trained by its engine; bundles
live in ``models``), never the reverse. Every import counts: at module level, inside
functions, and ``"urbanflow.module:Class"`` strings that the registries import by name. Only
imports under ``if TYPE_CHECKING:`` (never run) are left out.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "urbanflow"

LAYERS = {
    "errors": 0,
    "version": 0,
    "graph": 1,
    "data": 2,
    "datasets": 2,
    "training": 3,
    "models": 4,
    "evaluation": 5,
    "decisions": 5,
    "serving": 6,
    "cli": 7,
    "__main__": 7,
}
ROOT_RANK = LAYERS["data"]  # urbanflow/__init__.py re-exports the data values only
MODULE_STRING = re.compile(r"^urbanflow(\.[A-Za-z_][A-Za-z0-9_]*)+(:[A-Za-z_][A-Za-z0-9_]*)?$")


def rank(module: str) -> int:
    """The layer of a dotted module name inside the package."""
    parts = module.split(".")
    if len(parts) == 1:
        return ROOT_RANK
    return LAYERS[parts[1]]


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def references(tree: ast.AST, this: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every urbanflow module the code imports or names by string."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = this.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_STRING.match(node.value)
        ):
            found.append((node.lineno, node.value.partition(":")[0]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [(line, name) for line, name in found if name.split(".")[0] == "urbanflow"]


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """``file:line: a (layer) imports b (layer)`` for every import of a higher layer."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        this = module_name(path, root)
        own = rank(this) if path.name != "__init__.py" or this.count(".") else ROOT_RANK
        for line, target in references(ast.parse(path.read_text(encoding="utf-8")), this):
            if rank(target) > own:
                problems.append(
                    f"{path.relative_to(root.parent)}:{line}: {this} (layer {own}) imports "
                    f"{target} (layer {rank(target)})"
                )
    return problems


def test_layers_import_downwards_only() -> None:
    problems = upward_imports()
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_every_package_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        rank(module_name(path, PACKAGE))  # a KeyError names a module outside every layer


def test_the_check_catches_each_kind_of_upward_import(tmp_path: Path) -> None:
    package = tmp_path / "urbanflow"
    (package / "training").mkdir(parents=True)
    (package / "models").mkdir()
    (package / "training" / "engine.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from urbanflow.evaluation.evaluate import EvaluationResult\n"
        "def run():\n"
        "    from urbanflow.models.neural import NeuralForecaster\n"
    )
    (package / "models" / "registry.py").write_text(
        'TABLE = {"x": "urbanflow.serving.app:create_app"}\nimport urbanflow.training.engine\n'
    )
    problems = upward_imports(package)
    assert len(problems) == 2, problems
    assert "training.engine (layer 3) imports urbanflow.models.neural" in problems[1]
    assert "models.registry (layer 4) imports urbanflow.serving.app" in problems[0]


def test_import_urbanflow_does_not_load_torch() -> None:
    code = (
        "import sys, urbanflow, urbanflow.graph, urbanflow.graph.matrices, "
        "urbanflow.models.registry, urbanflow.models.networks; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
