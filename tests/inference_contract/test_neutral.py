"""The site–worker contract stays neutral: it imports neither side (nor Django), and the site
imports nothing from the inference worker, only the contract."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(package: str) -> dict[str, set[str]]:
    """file → every module its import statements name (at any depth, inside functions too)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path} imports {name}"
        for path, names in imported_modules(package).items()
        for name in sorted(names)
        if name.split(".")[0] in forbidden
    ]


def test_the_contract_imports_neither_side():
    assert offenders("inference_contract", ("webapp", "worker", "django", "vllm", "torch")) == []


def test_the_site_imports_nothing_from_the_inference_worker():
    assert offenders("webapp", ("worker",)) == []
