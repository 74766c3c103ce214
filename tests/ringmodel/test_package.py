"""The package as others use it: the shipped checkpoint's code, and imports in pieces.

A checkpoint carries ringmodel's model files as remote code (vLLM and `trust_remote_code` load
them without this package), so the shipped ring-tiny must carry exactly the files in `ringmodel/`;
and the web side builds prompts with `ringmodel.chat` / `ringmodel.tokenizer` without loading
torch, which the lazy package `__init__` allows.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "ring-tiny"


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.py")), ids=lambda p: p.name)
def test_the_shipped_checkpoint_code_equals_ringmodels_files(path):
    assert path.read_bytes() == (ROOT / "ringmodel" / path.name).read_bytes(), (
        f"checkpoints/ring-tiny/{path.name} differs from ringmodel/{path.name}: copy it over "
        "and update the checkpoint's manifest.json (its sha256 and bytes)"
    )


def test_the_shipped_checkpoint_carries_every_model_file_and_its_manifest_agrees():
    names = {p.name for p in SHIPPED.glob("*.py")}
    assert names == {"configuration_bailing_moe.py", "modeling_bailing_moe.py", "moe.py"}
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    assert names <= manifest["files"].keys()
    # Every file's sha256 and size, as the inference worker checks before it serves the model.
    from ringmodel import verify_checkpoint

    verify_checkpoint(str(SHIPPED))


def _imported_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_prompts_and_the_tokenizer_load_without_torch():
    loaded = _imported_after(
        "from ringmodel.chat import build_prompt_ids\nfrom ringmodel import THINK_OPEN"
    )
    assert "ringmodel.chat" in loaded and "torch" not in loaded


def test_a_model_side_name_registers_bailing_moe_with_transformers():
    code = (
        "import ringmodel\n"
        "ringmodel.BailingMoeConfig\n"
        "from transformers import AutoConfig\n"
        "assert AutoConfig.for_model('bailing_moe').model_type == 'bailing_moe'"
    )
    assert "torch" in _imported_after(code)
