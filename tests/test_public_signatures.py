"""Every public function of the site, the worker, the model and the trainer annotates its parameters.

mypy (`make test`, config in pyproject.toml) checks that the annotations agree; it cannot require
them of public functions only, so this test does: a function or method whose name has no leading
underscore, in a class whose name has none, names the type of every parameter but self/cls. Private
helpers and functions nested in others may leave theirs to inference.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("webapp", "worker", "ringmodel", "training")
NOT_YET: set[str] = set()


def public_functions(body: list[ast.stmt], in_class: bool = False):
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not node.name.startswith("_"):
                yield node, in_class
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            yield from public_functions(node.body, in_class=True)


def unannotated_parameters(function: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool):
    arguments = function.args
    parameters = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    parameters += [star for star in (arguments.vararg, arguments.kwarg) if star is not None]
    if in_class and parameters and parameters[0].arg in ("self", "cls"):
        parameters = parameters[1:]
    return [parameter.arg for parameter in parameters if parameter.annotation is None]


def sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "migrations" not in path.parts and relative not in NOT_YET:
                yield relative, path


def test_the_packages_are_found():
    assert sum(1 for _ in sources()) > 150


def test_every_public_function_annotates_its_parameters():
    missing = []
    for relative, path in sources():
        tree = ast.parse(path.read_text(), filename=relative)
        for function, in_class in public_functions(tree.body):
            if names := unannotated_parameters(function, in_class):
                missing.append(f"{relative}:{function.lineno} {function.name}({', '.join(names)})")
    assert not missing, "public functions with unannotated parameters:\n" + "\n".join(missing)
