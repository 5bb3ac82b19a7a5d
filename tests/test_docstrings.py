"""Every public function and class of models/, data/ and evaluation/ documents its parameters.

The rule (issue 8, Darts style): a docstring with a ``Parameters`` section in which each
parameter has a line of its own, ``name`` or ``name : type`` (numpydoc's ``x, y`` shares one
entry between parameters described together). Classes document their
constructor's parameters (or a dataclass's fields) in the class docstring or ``__init__``'s.
Public methods of public classes count; names starting with ``_`` do not.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "urbanflow"
DOCUMENTED_LAYERS = ("models", "data", "evaluation")


def parameter_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    arguments = function.args
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    names += [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return [name for name in names if name not in ("self", "cls")]


def dataclass_fields(cls: ast.ClassDef) -> list[str]:
    is_dataclass = any("dataclass" in ast.unparse(decorator) for decorator in cls.decorator_list)
    if not is_dataclass:
        return []
    return [
        node.target.id
        for node in cls.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and "ClassVar" not in ast.unparse(node.annotation)
        and not node.target.id.startswith("_")
        and "init=False" not in ast.unparse(node.value or ast.Constant(None))
    ]


def documented_parameters(docstring: str | None) -> set[str]:
    """Names listed under a ``Parameters`` heading (numpydoc / Darts layout)."""
    if not docstring:
        return set()
    lines = [line.strip() for line in docstring.splitlines()]
    if "Parameters" not in lines:
        return set()
    section = lines[lines.index("Parameters") + 2 :]  # past the heading's underline
    names = set()
    for line, after in zip(section, [*section[1:], ""], strict=True):
        if after and set(after) == {"-"}:  # the next heading (Returns, Attributes, ...)
            break
        match = re.fullmatch(r"\*{0,2}([A-Za-z_][A-Za-z0-9_, ]*?)(\s*:.*)?", line)
        if match:  # `name`, `name : type` or numpydoc's shared entry `x, tod, dow`
            names.update(name.strip() for name in match.group(1).split(","))
    return names


def undocumented(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """``module:qualname: a, b`` for each public callable whose parameters lack a line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(root).with_suffix("").as_posix().replace("/", ".")
    problems = []

    def check(name: str, wanted: list[str], *docstrings: str | None) -> None:
        documented = set().union(*(documented_parameters(d) for d in docstrings))
        missing = [p for p in wanted if p not in documented]
        if missing:
            problems.append(f"{where}:{name}: {', '.join(missing)}")

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not node.name.startswith("_"):
                check(node.name, parameter_names(node), ast.get_docstring(node))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            methods = {
                item.name: item
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
            init = methods.get("__init__")
            wanted = parameter_names(init) if init else dataclass_fields(node)
            init_doc = ast.get_docstring(init) if init else None
            check(node.name, wanted, ast.get_docstring(node), init_doc)
            for method in methods.values():
                if not method.name.startswith("_"):
                    check(
                        f"{node.name}.{method.name}",
                        parameter_names(method),
                        ast.get_docstring(method),
                    )
    return problems


MODULES = sorted(path for layer in DOCUMENTED_LAYERS for path in (PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_public_parameters_are_documented(path: Path) -> None:
    problems = undocumented(path)
    assert not problems, "parameters missing from a Parameters section:\n" + "\n".join(problems)


def test_the_checker_sees_a_missing_parameter(tmp_path: Path) -> None:
    module = tmp_path / "example.py"
    module.write_text(
        "def scale(values, factor):\n"
        '    """Multiply.\n\n    Parameters\n    ----------\n    values\n        Numbers.\n"""\n'
        "class Box:\n"
        '    """A box."""\n\n'
        "    def __init__(self, size):\n"
        "        self.size = size\n"
    )
    assert undocumented(module, tmp_path) == ["example:scale: factor", "example:Box: size"]
