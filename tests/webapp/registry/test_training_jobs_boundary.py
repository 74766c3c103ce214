"""The boundary between the site and the trainer (webapp/registry/training_jobs/).

The web processes import the whole training-jobs package, the registry's views, services, selectors
and tasks, and the pure training modules they call, without loading torch or transformers; only
bridge.py reaches the torch side of `training`, and only inside its functions; no module of the
registry imports, at module level, one that imports it back; and the site's job recorder is the
trainer's one observer interface.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from training.observer import TrainingObserver

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "webapp" / "registry" / "training_jobs"
# What the site may import from `training` outside the bridge: modules with no torch in them.
PURE_TRAINING_MODULES = {
    "training",
    "training.c3po.config",
    "training.observer",
    "training.plan",
    "training.problems",
    "training.problems.base",
    "training.scoring",
}


def _modules_loaded_after(code: str) -> set[str]:
    script = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'webapp.settings')\n"
        f"{code}\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_the_web_side_of_training_jobs_loads_no_torch():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    imports = "\n".join(f"import webapp.registry.training_jobs.{m}" for m in modules)
    loaded = _modules_loaded_after(
        "import django\ndjango.setup()\n"
        f"{imports}\n"
        "import webapp.registry.views, webapp.registry.services, webapp.registry.selectors\n"
        "import webapp.registry.tasks, webapp.registry.consumers"
    )
    assert "webapp.registry.training_jobs.bridge" in loaded
    assert not {"torch", "transformers"} & loaded


@pytest.mark.parametrize("module", sorted(PURE_TRAINING_MODULES))
def test_the_pure_training_modules_load_no_torch(module):
    loaded = _modules_loaded_after(f"import {module}")
    assert not {"torch", "transformers"} & loaded


def _training_imports(tree: ast.Module, *, top_level_only: bool) -> set[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "training":
                found |= {f"training.{alias.name}" for alias in node.names}
            elif node.module.startswith(("training.", "ringmodel")):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(("training", "ringmodel"))}
    return found


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.relative_to(PACKAGE).as_posix()
)
def test_only_the_bridge_reaches_the_torch_side_of_training(path):
    tree = ast.parse(path.read_text())
    if path.name == "bridge.py":
        # The bridge's torch-side imports live inside the functions the Celery worker runs.
        assert _training_imports(tree, top_level_only=True) <= PURE_TRAINING_MODULES
    else:
        assert _training_imports(tree, top_level_only=False) <= PURE_TRAINING_MODULES


def _module_level_imports(path: Path, package: str) -> set[str]:
    """The webapp.registry modules `path` imports at module level (TYPE_CHECKING blocks aside)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found |= {n for n in names if _module_path(n).is_file()} or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(package)}
    return {m for m in found if _module_path(m).is_file()}


def _module_path(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_no_registry_module_imports_one_that_imports_it_back():
    package = "webapp.registry"
    files = [p for p in (ROOT / "webapp" / "registry").rglob("*.py") if "migrations" not in p.parts]
    graph = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in files
    }
    edges = {
        name: _module_level_imports(path, package) & graph.keys() for name, path in graph.items()
    }

    def reaches(start: str, target: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            current = stack.pop()
            if current == target:
                return True
            if current not in seen:
                seen.add(current)
                stack.extend(edges.get(current, ()))
        return False

    cycles = sorted(
        f"{a} <-> {b}" for a, targets in edges.items() for b in targets if reaches(b, a)
    )
    assert cycles == []


def test_the_job_recorder_is_the_trainers_observer():
    from webapp.registry.training_jobs.recorder import JobRecorder

    for name in (
        "metrics",
        "log",
        "samples",
        "checkpoint_written",
        "should_stop",
        "rank_heartbeats",
    ):
        assert callable(getattr(JobRecorder, name))
    assert issubclass(JobRecorder, TrainingObserver)
